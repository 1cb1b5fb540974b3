"""Neural language models trained by ``asrkit train lm``: scoring, next-token log-probs, generation.

An LM exp dir holds what every task's does: ``config.yaml`` (``task: lm``, a ``model``
section of type ``lm_lstm`` or ``lm_transformer``, ``units.kind`` word, char or bpe),
``checkpoints/*.pt`` (weights only) and ``units/``. :meth:`NeuralLM.load` rebuilds it
with :func:`asrkit.models.load_model` and :func:`asrkit.data.units.load_units`::

    lm = NeuralLM.load("exp/lm_lstm")                       # best.pt, on the CPU
    lm.sentence_scores([["the", "cat", "sat"]])             # [ln P(the cat sat </s>)]
    next_token_logprobs(lm.model, lm.sentence_ids(["the"]))  # (C,) ln P(. | <s> the)
    generate(lm, "the", num=3, temperature=0.8, top_p=0.9, seed=1)

A sentence ``w_1 .. w_n`` is fed as ``0 w_1 .. w_n`` and scored on predicting
``w_1 .. w_n 0``: id 0 is the sentence boundary (``<eos>`` of word units, the
``<blank>`` of char and bpe units). Word units map a word outside the vocabulary to
``<unk>`` (id 1); char and bpe units spell every word with the tokenizer the LM was
trained with (a character it never saw is its ``<unk>``). Scores are natural logs.

This is the one module of ``asrkit/lm`` that imports model code: the n-gram side
stays free of torch models.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from asrkit.config import CONFIG_FILE, load_saved_config
from asrkit.data.units import WORD_UNK, UnitMap, load_units
from asrkit.errors import InputError, UsageError, quote
from asrkit.models import LM_TYPES, LanguageModel, TransformerLM, load_model

__all__ = ["NeuralLM", "LM_KINDS", "next_token_logprobs", "generate", "check_generate", "MAX_GENERATE"]

#: the unit kinds of a neural LM
LM_KINDS = ("word", "char", "bpe")
#: bounds of what ``generate`` is asked for (num, max_len, beam)
MAX_GENERATE = 10000
#: tokens per scoring batch (B x L_max): bounds the (B, L, C) logits in memory
BATCH_TOKENS = 4096


def _not_an_lm(path: Path, why: str) -> InputError:
    return InputError(f"{path}: not a neural LM exp dir ({why}); give a folder written by 'asrkit train lm'")


class NeuralLM:
    """A trained neural LM with its units.

    Attributes: ``path`` (the exp dir), ``model`` (a :class:`~asrkit.models.lm.LanguageModel`
    in eval mode), ``units`` (:class:`~asrkit.data.units.UnitMap`), ``kind`` (``word``,
    ``char`` or ``bpe``), ``device``, ``config`` (the exp dir's saved config), ``name``
    (for reports: the exp dir).
    """

    def __init__(self, path: Path, model: LanguageModel, units: UnitMap, config: dict,
                 device: torch.device) -> None:
        self.path, self.model, self.units, self.config, self.device = path, model, units, config, device
        self.kind: str = units.kind
        self.name = str(path)

    @classmethod
    def load(cls, exp_dir: Union[str, os.PathLike], checkpoint: str = "best",
             device: Union[str, torch.device] = "cpu", impl: Optional[str] = None) -> "NeuralLM":
        """Rebuild the LM of ``exp_dir`` (``checkpoint``: ``best``, ``last``, ``epoch-3`` or a
        ``.pt`` path; ``device="auto"`` picks CUDA when present; ``impl`` overrides
        ``model.impl``). :class:`InputError` when ``exp_dir`` is not an LM exp dir."""
        path = Path(exp_dir)
        if not path.is_dir():
            raise _not_an_lm(path, "no such directory" if not path.exists() else "not a directory")
        if not (path / CONFIG_FILE).is_file():
            raise _not_an_lm(path, f"no {CONFIG_FILE}")
        config = load_saved_config(path)
        model_cfg = config.get("model")
        mtype = model_cfg.get("type") if isinstance(model_cfg, dict) else None
        if mtype not in LM_TYPES:
            raise _not_an_lm(path, f"its model.type is {mtype!r}, not one of {', '.join(LM_TYPES)}")
        units = load_units(path, config)
        if units.kind not in LM_KINDS:
            raise _not_an_lm(path, f"its units are {units.kind}, not one of {', '.join(LM_KINDS)}")
        model, config = load_model(path, checkpoint, device, impl)
        if model.num_classes != units.num_classes:
            raise InputError(f"{path}: the model has {model.num_classes} outputs but units/ has "
                             f"{units.num_classes} units; the units dir does not belong to this model")
        return cls(path, model, units, config, next(model.parameters()).device)

    # ------------------------------------------------------------------ words -> ids

    def sentence_ids(self, words: Sequence[str]) -> list[int]:
        """The unit ids of a word sequence, without the boundaries: word units give ``<unk>``
        (id 1) to a word outside the vocabulary (and to a literal ``<eos>``); char and bpe
        units spell the words with the LM's tokenizer."""
        if self.kind == "word":
            unk = self.units.id_of(WORD_UNK)
            return [i if (i := self.units.id_of(w)) is not None and i > 0 else unk for w in words]
        assert self.units.tokenizer is not None
        return self.units.tokenizer.encode(list(words))

    def is_oov(self, word: str) -> bool:
        """Word units: ``word`` is not in the vocabulary (``<unk>`` itself counts as one, as
        in SRILM and kenlm). Char and bpe units have no OOVs."""
        if self.kind != "word":
            return False
        i = self.units.id_of(word)
        return i is None or i <= 1

    def ids_text(self, ids: Sequence[int]) -> str:
        """The text of unit ids (no boundaries): words joined by spaces."""
        ids = [int(i) for i in ids]
        if self.kind == "word":
            return " ".join(self.units.symbols(ids))
        return " ".join(self.units.tokens(ids))

    # ------------------------------------------------------------------ scoring

    def token_scores(self, id_lists: Sequence[Sequence[int]]) -> list[Tensor]:
        """Per-token natural-log probabilities of each id sequence and then ``</s>``:
        ``(n + 1,)`` float64 on the CPU per sequence of ``n`` ids, batched."""
        return _token_scores(self.model, id_lists, self.device)

    def sentence_scores(self, sentences: Sequence[Sequence[str]]) -> list[float]:
        """Natural-log ``P(w_1 .. w_n </s> | <s>)`` of each sentence (a list of words), OOVs
        scored as ``<unk>``; sentences are batched (padded, longest first)."""
        return [float(s.sum()) for s in self.token_scores([self.sentence_ids(w) for w in sentences])]

    def __repr__(self) -> str:
        return (f"NeuralLM(path={str(self.path)!r}, model={type(self.model).__name__}, kind={self.kind!r}, "
                f"units={self.units.num_classes})")


def _context_len(model: LanguageModel) -> Optional[int]:
    return model.max_len if isinstance(model, TransformerLM) else None


@torch.no_grad()
def _row_scores(model: LanguageModel, inputs: Tensor, targets: Tensor) -> Tensor:
    """``inputs, targets (B, L)`` -> ``log P(targets | inputs so far) (B, L)`` float32."""
    return model(inputs, targets).float()  # (B, L): no (B, L, C) softmax with an adaptive output layer


@torch.no_grad()
def _long_row_scores(model: LanguageModel, row: Tensor, window: int) -> Tensor:
    """A row longer than a Transformer's ``max_len``: strided windows of ``window`` tokens,
    each scoring only the positions after the previous one's end, with at least
    ``window // 2`` tokens of context (the first ``window`` positions see their whole prefix)."""
    inputs, targets = row[:-1], row[1:]
    n, keep = inputs.numel(), window // 2
    out = torch.empty(n, dtype=torch.float32, device=row.device)
    done = start = 0
    while done < n:
        end = min(start + window, n)
        lp = _row_scores(model, inputs[None, start:end], targets[None, start:end])[0]  # (end - start,)
        out[done:end] = lp[done - start:]
        done, start = end, max(0, end - keep)
    return out


def _token_scores(model: LanguageModel, id_lists: Sequence[Sequence[int]], device: torch.device) -> list[Tensor]:
    rows = [[0, *map(int, ids), 0] for ids in id_lists]  # <s> w_1 .. w_n </s>
    C = model.num_classes
    for row in rows:
        if any(not 0 <= i < C for i in row):
            raise ValueError(f"unit ids must be in 0 .. {C - 1}")
    out: list[Optional[Tensor]] = [None] * len(rows)
    window = _context_len(model)
    order = sorted(range(len(rows)), key=lambda k: -len(rows[k]))  # longest first: little padding
    k = 0
    while k < len(order):
        L = len(rows[order[k]]) - 1
        if window is not None and L > window:
            row = torch.tensor(rows[order[k]], dtype=torch.long, device=device)
            out[order[k]] = _long_row_scores(model, row, window).double().cpu()
            k += 1
            continue
        batch = order[k:k + max(1, BATCH_TOKENS // L)]
        pad = torch.zeros(len(batch), L + 1, dtype=torch.long)  # right padding never reaches a real position
        for b, r in enumerate(batch):
            pad[b, :len(rows[r])] = torch.tensor(rows[r])
        pad = pad.to(device)
        scores = _row_scores(model, pad[:, :-1], pad[:, 1:]).double().cpu()  # (B, L)
        for b, r in enumerate(batch):
            out[r] = scores[b, :len(rows[r]) - 1]
        k += len(batch)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------ next token


def _as_model(model: Union[LanguageModel, NeuralLM]) -> LanguageModel:
    return model.model if isinstance(model, NeuralLM) else model


@torch.no_grad()
def next_token_logprobs(model: Union[LanguageModel, NeuralLM], prefix: Sequence[int]) -> Tensor:
    """``(C,)`` float32 natural-log probabilities of the token after ``<s> prefix``
    (``prefix``: unit ids without the leading boundary 0; id 0 of the result is ``</s>``).
    A Transformer LM sees the last ``max_len`` tokens, as its ``step`` does."""
    lm = _as_model(model)
    device = next(lm.parameters()).device
    tokens = torch.tensor([0, *map(int, prefix)], dtype=torch.long, device=device)
    window = _context_len(lm)
    if window is not None:
        tokens = tokens[-window:]
    return torch.log_softmax(lm(tokens[None]).float()[0, -1], -1)  # a no-op on an adaptive LM's log-probs


# ------------------------------------------------------------------ generation


def check_generate(num: int, max_len: int, temperature: float, top_k: int, top_p: float, beam: int) -> None:
    """:class:`UsageError` naming the first bad option of :func:`generate`."""
    def bad(opt: str, what: str, value) -> UsageError:
        return UsageError(f"{opt}: expected {what}, got {value!r}")

    for opt, value in (("--num", num), ("--max-len", max_len)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GENERATE:
            raise bad(opt, f"an integer in 1 .. {MAX_GENERATE}", value)
    if isinstance(beam, bool) or not isinstance(beam, int) or not 0 <= beam <= MAX_GENERATE:
        raise bad("--beam", f"an integer in 0 .. {MAX_GENERATE} (0: sample)", beam)
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise bad("--temperature", "a number >= 0 (0: greedy)", temperature)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise bad("--top-k", "an integer >= 0 (0: every unit)", top_k)
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise bad("--top-p", "a number in (0, 1]", top_p)
    if beam and num > beam:
        raise UsageError(f"--num {num} is more than the --beam {beam} hypotheses a beam search keeps")


def _prompt_ids(lm: NeuralLM, prompt: str) -> list[int]:
    words = prompt.split()
    ids = lm.sentence_ids(words)
    if words and lm.kind == "word" and all(lm.is_oov(w) for w in words):
        raise UsageError(f"the prompt {quote(prompt)} has only words outside the LM's vocabulary "
                         f"({lm.units.num_classes - 2} words in {lm.path}/units); give a prompt with known words")
    return ids


def _filter(logp: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """Sampling probabilities ``(N, C)`` from log-probs: temperature, then top-k, then
    top-p (the smallest set of most likely units whose mass reaches ``top_p``)."""
    logits = logp / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, -1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, -1)
    if top_p < 1:
        sorted_p, idx = probs.sort(-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of the more likely units
        drop = before >= top_p                   # the first unit is always kept
        probs = probs.scatter(-1, idx, sorted_p.masked_fill(drop, 0.0))
    return probs


@torch.no_grad()
def _sample(lm: NeuralLM, prompt: list[int], num: int, max_len: int, temperature: float, top_k: int,
            top_p: float, seed: int) -> list[list[int]]:
    model = lm.model
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    state = model.init_state(num, lm.device)
    feed = torch.zeros(num, dtype=torch.long, device=lm.device)
    logp = None
    for tok in [0, *prompt]:
        feed.fill_(tok)
        logp, state = model.step(state, feed)
    out: list[list[int]] = [[] for _ in range(num)]
    alive = torch.ones(num, dtype=torch.bool)
    for t in range(max_len):
        lp = logp.cpu()
        if temperature == 0:
            nxt = lp.argmax(-1)
        else:
            nxt = torch.multinomial(_filter(lp, temperature, top_k, top_p), 1, generator=gen)[:, 0]
        for r in alive.nonzero()[:, 0].tolist():
            if int(nxt[r]) == 0:
                alive[r] = False
            else:
                out[r].append(int(nxt[r]))
        if not alive.any() or t == max_len - 1:
            break
        logp, state = model.step(state, nxt.to(lm.device))
    return out


@torch.no_grad()
def _beam(lm: NeuralLM, prompt: list[int], num: int, max_len: int, beam: int) -> list[list[int]]:
    """Beam search on ``ln P(continuation </s> | <s> prompt)``: the ``num`` best complete
    continuations (one that reaches ``max_len`` tokens ends there, without ``</s>``)."""
    model = lm.model
    state = model.init_state(1, lm.device)
    feed = torch.zeros(1, dtype=torch.long, device=lm.device)
    for tok in [0, *prompt]:
        feed.fill_(tok)
        logp, state = model.step(state, feed)
    hyps: list[list[int]] = [[]]
    scores = torch.zeros(1, dtype=torch.float64)
    done: list[tuple[float, list[int]]] = []
    C = model.num_classes
    for t in range(max_len):
        total = scores[:, None] + logp.double().cpu()  # (N, C)
        for r in range(len(hyps)):  # ending here
            done.append((float(total[r, 0]), hyps[r]))
        total[:, 0] = -math.inf
        flat = total.reshape(-1)
        k = min(beam, int(torch.isfinite(flat).sum()))
        if k == 0:
            break
        top = flat.topk(k)
        rows, toks = top.indices // C, top.indices % C
        if t == max_len - 1:  # cut at max_len: the best continuations of this length end here
            done += [(float(v), hyps[int(r)] + [int(c)]) for v, r, c in zip(top.values, rows, toks)]
            break
        done.sort(key=lambda d: -d[0])
        if len(done) >= num and done[num - 1][0] >= float(top.values[0]):
            break  # scores only fall: no live hypothesis can beat the num-th finished one
        hyps = [hyps[int(r)] + [int(c)] for r, c in zip(rows, toks)]
        scores = top.values
        state = model.select_state(state, rows.to(lm.device))
        logp, state = model.step(state, toks.to(lm.device))
    done.sort(key=lambda d: -d[0])
    return [h for _, h in done[:num]]


def generate(lm: NeuralLM, prompt: str = "", *, num: int = 1, max_len: int = 50, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 1.0, beam: int = 0, seed: int = 0) -> list[str]:
    """``num`` continuations of ``prompt`` (words; empty: from the sentence start), each the
    prompt's text followed by at most ``max_len`` new units, ending at ``</s>``.

    ``beam > 0``: beam search, the ``num`` most likely continuations (temperature, top-k and
    top-p are not used). Else ``temperature == 0``: greedy (every line the same); else
    sampling from the LM's distribution divided by ``temperature``, cut to the ``top_k`` most
    likely units (0: all) and to the nucleus of mass ``top_p``. The draws come from a
    ``torch.Generator`` seeded with ``seed``: the same seed gives the same lines. The
    prompt's words are spelled as :meth:`NeuralLM.sentence_ids` does (an unknown word shows
    as ``<unk>``); a prompt of word units with only unknown words is a :class:`UsageError`.
    """
    check_generate(num, max_len, temperature, top_k, top_p, beam)
    ids = _prompt_ids(lm, prompt)
    if beam:
        conts = _beam(lm, ids, num, max_len, beam)
    else:
        conts = _sample(lm, ids, num, max_len, float(temperature), top_k, float(top_p), seed)
    return [lm.ids_text(ids + c) for c in conts]

