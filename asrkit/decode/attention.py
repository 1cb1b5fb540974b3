"""Decoding attention models (LAS, joint CTC/attention transformers): greedy and beam search.

The model contract is :mod:`asrkit.models.seq2seq`'s: ``encode(feats, lengths)
-> Encoded`` (``memory (B, S, H)``, ``lengths (B,)``, ``ctc_logits (B, S, C)``
or None, ``index(rows)``), ``init_state(enc)``, ``step(enc, state, tokens (N,))
-> (log_probs (N, C), state, attention (N, S))`` and ``select_state(state,
rows)``. Id 0 is ``<sos>`` (the first decoder input), ``<eos>`` (the decoder's
last output) and the CTC blank.

    enc = model.encode(feats, lengths)                               # (B, T, D), (B,)
    hyps = attention_greedy(model, enc)                              # one AttentionHyp per utterance
    nbest = attention_beam_search(model, enc, beam=10, ctc_weight=0.3, nbest=5)   # a list per utterance
    hyps[0].ids, hyps[0].score, hyps[0].attention.shape, hyps[0].hit_max_len     # ..., (U, S_0), False

**Greedy** (:func:`attention_greedy`): every utterance of the batch takes the
decoder's best token until it says ``<eos>``; finished utterances leave the
batch (their decoder rows are dropped). **Beam search**
(:func:`attention_beam_search`, ESPnet's ``BatchBeamSearch``): the
``B x beam`` hypotheses of a batch go through ``step`` together; each
hypothesis proposes its ``pre_beam`` best attention tokens (1.5 x beam; every
token with ``ctc_weight`` 1), each proposal is scored

    score = (1 - ctc_weight) * log P_att + ctc_weight * log P_ctc-prefix + lm_weight * ln P_lm + length_bonus * |Y|

(``log P_att``: the decoder's summed log-probabilities; ``log P_ctc-prefix``:
the CTC prefix probability of :mod:`asrkit.decode.ctc_prefix`, of the whole
sequence once ``<eos>`` is added; ``ln P_lm``: the LM of :mod:`asrkit.decode.fusion`,
a word n-gram scored at word ends (:mod:`asrkit.decode.word_lm`) or a neural LM
on the model's units scored at every token, ``</s>`` at ``<eos>``
(:mod:`asrkit.decode.neural_lm`); ``|Y|``: tokens without ``<eos>``), and
each utterance keeps its ``beam`` best. A proposal ending in ``<eos>``
leaves the beam as a finished hypothesis; the search of an utterance stops
when its ``nbest`` best finished hypotheses score at least as well as every
running one (exact: scores only fall as a hypothesis grows, with
``length_bonus <= 0`` and no length normalization), otherwise by ESPnet's
end detection (the best hypotheses finished at the last 3 lengths are all
more than 10 below the best). With ``length_norm`` the finished hypotheses
are ranked by ``score / (|Y| + 1)``.

**Maximum length**: a hypothesis holds at most ``max(1, int(max_len_ratio x S))``
tokens (``S``: the utterance's encoder frames; or ``max_len`` for every
utterance); at that length only ``<eos>`` may follow. A result that ended
there although ``<eos>`` was not the decoder's choice is flagged
(``hit_max_len``); :func:`attention_decode` warns once with their count.

:func:`attention_decode` runs a loaded exp dir over a feature store into
:class:`~asrkit.decode.output.Hypothesis` objects (utt-id order, the batching
of :func:`asrkit.decode.emissions.map_batches`); :func:`encode_store` keeps the
encoder outputs of a store for repeated searches (``asrkit tune``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from asrkit.decode.exp import ATTENTION_TASKS
from asrkit.decode.output import Hypothesis
from asrkit.errors import UsageError

__all__ = [
    "ATTENTION_TASKS", "DEFAULT_BEAM", "DEFAULT_CTC_WEIGHT", "DEFAULT_MAX_LEN_RATIO", "PRE_BEAM_RATIO",
    "AttentionHyp", "AttentionSearch", "EncodedBatch", "attention_beam_search", "attention_decode", "attention_greedy",
    "attention_hypothesis", "check_max_len_ratio", "encode_store", "joined_tokens", "max_lengths", "warn_max_len",
]

#: Beam width when a beam search is asked for (``--ctc-weight``, ``--lm``, ``--nbest``...) without ``--beam``.
DEFAULT_BEAM = 10
#: CTC weight of a model with a CTC head (ESPnet's usual 0.3).
DEFAULT_CTC_WEIGHT = 0.3
#: Maximum hypothesis length per encoder frame: 2 covers LAS's 8x time reduction (12.5 frames/s) at
#: 25 characters/s.
DEFAULT_MAX_LEN_RATIO = 2.0
#: Tokens proposed per hypothesis and step: this x beam (ESPnet's ``pre_beam_ratio``).
PRE_BEAM_RATIO = 1.5
#: ESPnet's end detection: stop when the best hypotheses finished at each of the last ``_END_M`` lengths
#: are more than ``-_END_D`` below the best finished one.
_END_M = 3
_END_D = -10.0
_NINF = float("-inf")


def _eos_id() -> int:
    """The decoder's ``<eos>`` (= ``<sos>`` = the CTC blank): ``asrkit.models.seq2seq.EOS``."""
    try:
        from asrkit.models.seq2seq import EOS
    except ImportError:  # the contract's value, for searches over models that do not import asrkit.models
        return 0
    return int(EOS)


class AttentionHyp(NamedTuple):
    """One decoded hypothesis of one utterance.

    Attributes:
        ids: output unit ids, ``<eos>`` not included (``units.tokens(ids)`` -> words / phones).
        score: the search's score (greedy: the summed decoder log-probabilities, ``<eos>`` included).
        attention: ``(U, S)`` float32 CPU: the decoder's attention over the utterance's ``S``
            encoder frames at the step that emitted each token.
        hit_max_len: True when the hypothesis was ended at the maximum length, ``<eos>``
            not being the decoder's best token there.
        parts: the unweighted totals of the scorers used: ``att`` (decoder log-probability),
            ``ctc`` (CTC log-probability of the sequence), ``lm`` (natural-log LM probability of the
            sequence, ``</s>`` included).
    """

    ids: list[int]
    score: float
    attention: Tensor
    hit_max_len: bool
    parts: dict[str, float]


def max_lengths(enc_lengths: Tensor, max_len_ratio: float = DEFAULT_MAX_LEN_RATIO,
                max_len: Optional[int] = None) -> list[int]:
    """Maximum tokens per utterance: ``max(1, int(max_len_ratio * S))``, or ``max_len`` for all."""
    if max_len is not None:
        if max_len < 1:
            raise UsageError(f"the maximum length must be >= 1, got {max_len}")
        return [int(max_len)] * int(enc_lengths.shape[0])
    check_max_len_ratio(max_len_ratio)
    return [max(1, int(max_len_ratio * int(n))) for n in enc_lengths.tolist()]


def check_max_len_ratio(ratio: float) -> None:
    """:class:`UsageError` unless ``ratio`` is a finite number > 0 (``--max-len-ratio``)."""
    if not math.isfinite(ratio) or ratio <= 0:
        raise UsageError(f"--max-len-ratio must be a finite number > 0, got {ratio}")


def _rows_index(keep: Sequence[int], device: torch.device) -> Tensor:
    return torch.tensor(list(keep), dtype=torch.int64, device=device)


# -- greedy ------------------------------------------------------------------------------------------


def attention_greedy(model, enc, *, max_len_ratio: float = DEFAULT_MAX_LEN_RATIO,
                     max_len: Optional[int] = None) -> list[AttentionHyp]:
    """The decoder's best token at every step, for every utterance of ``enc`` at once.

    Args:
        model: a sequence-to-sequence model (the module docstring's contract), in eval mode.
        enc: ``model.encode(feats, lengths)`` of ``B`` utterances.
        max_len_ratio, max_len: the maximum length (see the module docstring).

    Returns:
        one :class:`AttentionHyp` per utterance, in batch order (``parts``: ``att``).
    """
    eos = _eos_id()
    limits = max_lengths(enc.lengths, max_len_ratio, max_len)
    frames = [int(n) for n in enc.lengths.tolist()]
    B = len(limits)
    ids: list[list[int]] = [[] for _ in range(B)]
    rows: list[list[Tensor]] = [[] for _ in range(B)]
    score = [0.0] * B
    hit = [False] * B
    alive = list(range(B))
    with torch.no_grad():
        cur, state = enc, model.init_state(enc)
        tokens = torch.full((B,), eos, dtype=torch.int64, device=enc.memory.device)  # <sos>
        while alive:
            lp, state, att = model.step(cur, state, tokens)  # (R, C), state, (R, S)
            lp = lp.float()
            best_lp, best = lp.max(dim=-1)  # (R,), (R,)
            best_l, best_lpl, eos_l = best.tolist(), best_lp.tolist(), lp[:, eos].tolist()
            att = att.float().cpu()
            keep = []
            for j, b in enumerate(alive):
                if len(ids[b]) >= limits[b]:  # at the maximum length only <eos> may follow
                    score[b] += eos_l[j]
                    hit[b] = best_l[j] != eos
                    continue
                score[b] += best_lpl[j]
                if best_l[j] == eos:
                    continue
                ids[b].append(best_l[j])
                rows[b].append(att[j, :frames[b]])
                keep.append(j)
            if len(keep) < len(alive) and keep:
                idx = _rows_index(keep, lp.device)
                state = model.select_state(state, idx)
                cur = cur.index(idx)
                best = best[idx]
            alive = [alive[j] for j in keep]
            tokens = best
    return [AttentionHyp(ids[b], score[b], _stack(rows[b], frames[b]), hit[b], {"att": score[b]}) for b in range(B)]


def _stack(rows: list[Tensor], frames: int) -> Tensor:
    return torch.stack(rows) if rows else torch.zeros(0, frames)


# -- beam search -------------------------------------------------------------------------------------


@dataclass
class _Ended:
    ids: list[int]
    score: float
    rank: float  # score, or score / (|Y| + 1) with length normalization
    attention: Tensor
    hit: bool
    parts: dict[str, float]


def attention_beam_search(model, enc, beam: int, *, ctc_weight: float = 0.0, lm=None, lm_weight: float = 0.0,
                          length_bonus: float = 0.0, length_norm: bool = False, nbest: int = 1,
                          max_len_ratio: float = DEFAULT_MAX_LEN_RATIO, max_len: Optional[int] = None,
                          pre_beam: Optional[int] = None) -> list[list[AttentionHyp]]:
    """Beam search over every utterance of ``enc`` at once (``B x beam`` decoder rows).

    Args:
        model, enc: as for :func:`attention_greedy`.
        beam: hypotheses kept per utterance.
        ctc_weight: weight of the CTC prefix score (0..1; > 0 needs ``enc.ctc_logits``); the
            decoder gets ``1 - ctc_weight``.
        lm: a :class:`asrkit.decode.fusion.FusionLM` (a word n-gram or a neural LM on the model's
            char/bpe units) or None; ``lm_weight`` its weight.
        length_bonus: added per token (``<eos>`` not counted).
        length_norm: rank finished hypotheses by ``score / (|Y| + 1)``.
        nbest: finished hypotheses returned per utterance (``<= beam``).
        max_len_ratio, max_len: the maximum length (module docstring).
        pre_beam: tokens proposed per hypothesis and step (default ``PRE_BEAM_RATIO x beam``, every
            token when ``ctc_weight`` is 1).

    Returns:
        per utterance (batch order), its ``nbest`` best :class:`AttentionHyp`, best first (fewer when
        fewer finished; one empty hypothesis with score -inf when none could finish). ``score`` is
        the formula of the module docstring; ``parts`` has ``att``, and ``ctc`` / ``lm`` when used.
    """
    from asrkit.decode.ctc_prefix import CTCPrefixScorer

    _check_search(beam, nbest, ctc_weight, lm_weight, length_bonus)
    if ctc_weight > 0 and getattr(enc, "ctc_logits", None) is None:
        raise UsageError("--ctc-weight: this model has no CTC head (LAS); decode it with --ctc-weight 0")
    eos = _eos_id()
    limits = max_lengths(enc.lengths, max_len_ratio, max_len)
    frames = [int(n) for n in enc.lengths.tolist()]
    B = len(limits)
    device = enc.memory.device
    att_w = 1.0 - ctc_weight
    use_lm = lm is not None and lm_weight > 0
    exact_stop = length_bonus <= 0 and not length_norm
    ended: list[list[_Ended]] = [[] for _ in range(B)]
    done = [False] * B

    with torch.no_grad():
        scorer = None
        if ctc_weight > 0:
            ctc_lp = torch.log_softmax(enc.ctc_logits.float(), dim=-1)  # (B, S, C)
            scorer = CTCPrefixScorer(ctc_lp, enc.lengths, blank=eos, eos=eos)
        # the running hypotheses: rows grouped by utterance, in utterance order
        row_utt = torch.arange(B, device=device)  # (R,)
        cur, state = enc, model.init_state(enc)
        ctc_state = scorer.initial(row_utt) if scorer is not None else None
        lm_rows = lm.init_rows(B, device) if use_lm else None
        tot_att = torch.zeros(B, device=device)  # (R,)
        tot_lm = torch.zeros(B, device=device)  # (R,)
        hist = torch.zeros(B, 0, dtype=torch.int64, device=device)  # (R, i) tokens so far
        # attention of every step's rows (R_s, S) and each next row's parent: traced back for the finished
        att_steps: list[Tensor] = []
        parent_steps: list[list[int]] = []
        tokens = torch.full((B,), eos, dtype=torch.int64, device=device)  # <sos>
        step = 0
        while row_utt.numel():
            R = int(row_utt.shape[0])
            lp, new_state, att = model.step(cur, state, tokens)  # (R, C), state, (R, S)
            lp = lp.float()
            C = int(lp.shape[1])
            K = min(C, pre_beam if pre_beam is not None else (C if ctc_weight >= 1.0 else
                                                                 max(1, int(PRE_BEAM_RATIO * beam))))
            att_top, cand = lp.topk(K, dim=-1)  # (R, K)
            utt_l = row_utt.tolist()
            final = torch.tensor([step >= limits[b] for b in utt_l], device=device)  # (R,) only <eos> may follow
            if bool(final.any()):
                cand[final] = eos
                att_top[final] = lp[final, eos][:, None]
                allowed = torch.ones(R, K, dtype=torch.bool, device=device)
                allowed[final, 1:] = False
            else:
                allowed = None
            length = step + (cand != eos).to(lp.dtype)  # (R, K)
            total = length_bonus * length if length_bonus else torch.zeros(R, K, device=device)
            cand_att = tot_att[:, None] + att_top  # (R, K)
            if att_w > 0:
                total = total + att_w * cand_att
            psi = r_ext = None
            if scorer is not None:
                psi, r_ext = scorer.score(ctc_state, cand)  # (R, K), (S, 2, R, K)
                total = total + ctc_weight * psi.to(total.dtype)
            cand_lm = None
            if use_lm:
                cand_lm = tot_lm[:, None] + lm.score_rows(lm_rows, cand).to(tot_lm.dtype)  # (R, K)
                total = total + lm_weight * cand_lm
            if allowed is not None:
                total = total.masked_fill(~allowed, _NINF)
            # per utterance: the beam best of its rows' proposals
            first = torch.zeros(B, dtype=torch.int64, device=device)
            counts = torch.bincount(row_utt, minlength=B)
            first[1:] = torch.cumsum(counts, 0)[:-1]
            pos = torch.arange(R, device=device) - first[row_utt]  # (R,) row within its utterance
            width = beam * K
            flat = torch.full((B, width), _NINF, dtype=total.dtype, device=device)
            slots = (row_utt * width + pos * K)[:, None] + torch.arange(K, device=device)  # (R, K) places in flat
            flat.view(-1)[slots.reshape(-1)] = total.reshape(-1)
            top_v, top_i = flat.topk(min(beam, width), dim=-1)  # (B, beam)
            top_v, top_i = top_v.tolist(), top_i.tolist()
            first_l, counts_l, cand_l2 = first.tolist(), counts.tolist(), cand.tolist()
            best_l = lp.argmax(dim=-1).tolist()
            cand_att_l = cand_att.tolist()
            psi_l = psi.tolist() if psi is not None else None
            cand_lm_l = cand_lm.tolist() if cand_lm is not None else None
            att_steps.append(att.float().cpu())
            parents: list[int] = []
            ks: list[int] = []
            new_tokens: list[int] = []
            for b in range(B):
                if done[b] or counts_l[b] == 0:
                    continue
                kept_scores = []
                for v, i in zip(top_v[b], top_i[b]):
                    if v == _NINF:
                        break
                    r, k = first_l[b] + i // K, i % K
                    tok = cand_l2[r][k]
                    if tok == eos:
                        n = step
                        parts = {"att": cand_att_l[r][k]}
                        if psi_l is not None:
                            parts["ctc"] = psi_l[r][k]
                        if cand_lm_l is not None:
                            parts["lm"] = cand_lm_l[r][k]
                        ended[b].append(_Ended(hist[r].tolist(), v, v / (n + 1) if length_norm else v,
                                               _trace(att_steps, parent_steps, r, frames[b]),
                                               bool(final[r]) and best_l[r] != eos, parts))
                    else:
                        parents.append(r)
                        ks.append(k)
                        new_tokens.append(tok)
                        kept_scores.append(v)
                if _stop(ended[b], kept_scores, nbest, exact_stop, step + 1):
                    done[b] = True
                    del parents[len(parents) - len(kept_scores):]
                    del ks[len(ks) - len(kept_scores):]
                    del new_tokens[len(new_tokens) - len(kept_scores):]
            if not parents:
                break
            idx = _rows_index(parents, device)
            k_idx = _rows_index(ks, device)
            tok_t = _rows_index(new_tokens, device)
            state = model.select_state(new_state, idx)
            cur = cur.index(idx)
            if scorer is not None:
                ctc_state = scorer.select(ctc_state, r_ext, psi, idx, k_idx, tok_t)
            if use_lm:
                lm_rows = lm.select_rows(lm_rows, idx, tok_t)
                tot_lm = cand_lm[idx, k_idx]
            tot_att = cand_att[idx, k_idx]
            hist = torch.cat([hist[idx], tok_t[:, None]], dim=1)
            parent_steps.append(parents)
            row_utt = row_utt[idx]
            tokens = tok_t
            step += 1

    out: list[list[AttentionHyp]] = []
    for b in range(B):
        fin = sorted(ended[b], key=lambda e: -e.rank)[:nbest]
        if not fin:
            out.append([AttentionHyp([], _NINF, torch.zeros(0, frames[b]), False, {"att": _NINF})])
            continue
        out.append([AttentionHyp(e.ids, e.score, e.attention, e.hit, e.parts) for e in fin])
    return out


def _trace(att_steps: list[Tensor], parent_steps: list[list[int]], row: int, frames: int) -> Tensor:
    """``(U, frames)`` attention of the hypothesis in ``row`` of the last step of ``att_steps``
    (the step where it ends): row by row back through the parents, one per token."""
    out = []
    for s in range(len(att_steps) - 2, -1, -1):
        row = parent_steps[s][row]
        out.append(att_steps[s][row, :frames])
    out.reverse()
    return _stack(out, frames)


def _check_search(beam: int, nbest: int, ctc_weight: float, lm_weight: float, length_bonus: float) -> None:
    from asrkit.decode.beam import check_beam
    from asrkit.decode.word_lm import check_lm_weight

    check_beam(beam, warn=False)
    if nbest < 1:
        raise UsageError(f"--nbest must be >= 1, got {nbest}")
    if nbest > beam:
        raise UsageError(f"--nbest {nbest} is larger than --beam {beam}; the beam holds at most {beam} hypotheses")
    if not math.isfinite(ctc_weight) or not 0.0 <= ctc_weight <= 1.0:
        raise UsageError(f"--ctc-weight must be between 0 and 1, got {ctc_weight}")
    check_lm_weight(lm_weight)
    if not math.isfinite(length_bonus):
        raise UsageError(f"--length-bonus must be a finite number, got {length_bonus}")


def _stop(ended: list[_Ended], running: list[float], nbest: int, exact: bool, length: int) -> bool:
    """Whether an utterance's search is over after a step: no running hypotheses; or (``exact``)
    its ``nbest`` best finished ones score at least as well as the best running one, which can
    only fall; or else ESPnet's end detection over the finished hypotheses' lengths."""
    if not running:
        return True
    if not ended:
        return False
    if exact:
        if len(ended) < nbest:
            return False
        kth = sorted((e.score for e in ended), reverse=True)[nbest - 1]
        return kth >= max(running)
    best = max(e.score for e in ended)
    count = 0
    for m in range(_END_M):
        same = [e.score for e in ended if len(e.ids) == length - 1 - m]
        if same and max(same) - best < _END_D:
            count += 1
    return count == _END_M


# -- settings, stores, hypotheses --------------------------------------------------------------------


@dataclass
class AttentionSearch:
    """How to decode: greedy (``beam`` None) or a beam search with its weights.

    ``lm`` is a :class:`asrkit.decode.fusion.FusionLM` (or None). :meth:`run`
    decodes one encoded batch; the settings are checked on construction
    (:class:`UsageError` naming the option).
    """

    beam: Optional[int] = None
    ctc_weight: float = 0.0
    lm: Any = None
    lm_weight: float = 0.0
    length_bonus: float = 0.0
    length_norm: bool = False
    nbest: Optional[int] = None
    max_len_ratio: float = DEFAULT_MAX_LEN_RATIO

    def __post_init__(self) -> None:
        check_max_len_ratio(self.max_len_ratio)
        if self.beam is None:
            asked = [name for name, on in (("--ctc-weight", self.ctc_weight > 0), ("--lm", self.lm is not None),
                                           ("--length-bonus", self.length_bonus != 0),
                                           ("--length-norm", self.length_norm), ("--nbest", self.nbest is not None))
                     if on]
            if asked:
                raise UsageError(f"{asked[0]} needs the beam search; give --beam N")
            return
        _check_search(self.beam, self.nbest or 1, self.ctc_weight, self.lm_weight, self.length_bonus)

    def check_model(self, model) -> None:
        """:class:`UsageError` when the search needs a CTC head the model lacks."""
        if self.ctc_weight > 0 and not getattr(model, "has_ctc", False):
            raise UsageError("--ctc-weight: this model has no CTC head (LAS); decode it with --ctc-weight 0")

    def run(self, model, enc) -> list[list[AttentionHyp]]:
        """The hypotheses of every utterance of ``enc``, best first (one for greedy)."""
        if self.beam is None:
            return [[h] for h in attention_greedy(model, enc, max_len_ratio=self.max_len_ratio)]
        return attention_beam_search(model, enc, self.beam, ctc_weight=self.ctc_weight, lm=self.lm,
                                     lm_weight=self.lm_weight, length_bonus=self.length_bonus,
                                     length_norm=self.length_norm, nbest=self.nbest or 1,
                                     max_len_ratio=self.max_len_ratio)

    def describe(self) -> str:
        if self.beam is None:
            return "greedy"
        parts = [f"beam {self.beam}"]
        if self.ctc_weight:
            parts.append(f"ctc weight {self.ctc_weight:g}")
        if self.lm is not None:
            parts.append(f"LM {self.lm.path} (weight {self.lm_weight:g})")
        if self.length_bonus:
            parts.append(f"length bonus {self.length_bonus:g}")
        if self.length_norm:
            parts.append("length-normalized")
        return ", ".join(parts)


def attention_hypothesis(utt: str, frames: int, hyps: Sequence[AttentionHyp], units,
                         nbest: bool = False, lm_weight: Optional[float] = None) -> Hypothesis:
    """The :class:`~asrkit.decode.output.Hypothesis` of an utterance's hypotheses (best first).

    ``extra`` (the jsonl fields): ``att_score`` (and ``ctc_score``, ``lm_score`` when used, with
    ``lm_weight``, the search's weight of ``lm_score``, so that ``asrkit rescore`` can take the
    decoder's LM out of ``score``), ``length`` (tokens), ``attention_max`` (mean over tokens of
    the largest attention weight: near 1 for a sharp alignment), ``hit_max_len``, and with
    ``nbest`` the list ``nbest`` of ``{"hyp", "score", ...}``.
    """
    best = hyps[0]

    def scores(h: AttentionHyp) -> dict[str, Any]:
        out: dict[str, Any] = {f"{k}_score": _round(v) for k, v in h.parts.items()}
        if "lm" in h.parts and lm_weight is not None:
            out["lm_weight"] = float(lm_weight)
        return out

    extra: dict[str, Any] = scores(best)
    extra["length"] = len(best.ids)
    extra["attention_max"] = round(float(best.attention.max(dim=-1).values.mean()), 4) if len(best.ids) else None
    extra["hit_max_len"] = bool(best.hit_max_len)
    if nbest:
        extra["nbest"] = [{"hyp": " ".join(units.tokens(h.ids)), "score": _round(h.score), **scores(h)}
                          for h in hyps]
    return Hypothesis(utt=utt, tokens=units.tokens(best.ids), score=best.score, frames=int(frames),
                      out_frames=int(best.attention.shape[1]), units=units.symbols(best.ids), extra=extra)


def _round(v: float) -> Optional[float]:
    return round(float(v), 4) if math.isfinite(v) else None


def attention_decode(exp, store, search: AttentionSearch, *, batch_size: int = 16,
                     utts: Optional[Sequence[str]] = None,
                     on_hypothesis: Optional[Callable[[], None]] = None,
                     max_frames: Optional[int] = None, batch_frames: Optional[int] = None,
                     clock=None) -> Iterator[Hypothesis]:
    """Hypotheses of every utterance of ``store`` (utt-id order) with the attention model of a
    loaded exp dir (:func:`asrkit.decode.exp.load_exp`); the encoder runs on length-sorted batches
    of ``batch_size`` and the search on each whole batch. Once all are out, a warning says how many
    utterances hit the maximum length. ``max_frames``: longer utterances are searched in pieces cut
    at pauses and their hypotheses joined (:mod:`asrkit.decode.longform`). ``batch_frames``:
    batches of that many padded frames instead of ``batch_size`` utterances; ``clock``: a
    :class:`~asrkit.decode.stopwatch.Stopwatch` that gets the encoder's time as ``forward`` (the
    search's stays out of it)."""
    import time

    from asrkit.decode.emissions import map_batches
    from asrkit.decode.longform import join_hypotheses

    search.check_model(exp.model)
    model, units, device = exp.model, exp.units, exp.device

    def run(names: list[str], feats: Tensor, lengths: Tensor) -> list[Hypothesis]:
        enc = model.encode(feats.to(device), lengths.to(device))
        t_search = time.perf_counter()
        results = search.run(model, enc)
        if clock is not None:  # map_batches counts all of run as forward: give the search's part back
            clock.add("forward", -(time.perf_counter() - t_search))
        return [attention_hypothesis(u, int(lengths[b]), results[b], units, search.nbest is not None,
                                     search.lm_weight)
                for b, u in enumerate(names)]

    hit = total = 0
    for hyp in map_batches(store, run, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size, utts=utts,
                           input_dim=exp.input_dim, max_frames=max_frames, join=join_hypotheses,
                           multiple=exp.subsampling, batch_frames=batch_frames, clock=clock):
        total += 1
        hit += bool(hyp.extra["hit_max_len"])
        if on_hypothesis is not None:
            on_hypothesis()
        yield hyp
    warn_max_len(hit, total, search.max_len_ratio)


def warn_max_len(hit: int, total: int, ratio: float) -> None:
    """The one warning of a decoding run whose utterances hit the maximum length."""
    if hit:
        from asrkit import log

        log.warn(f"{hit} of {total} utterances reached the maximum length ({ratio:g} x encoder frames) without "
                 f"<eos>; their hypotheses end there (raise --max-len-ratio if they are cut short)")


@dataclass
class EncodedBatch:
    """One batch of :func:`encode_store`: utt-ids, input frames and the encoder's output. A long
    utterance's pieces (:mod:`asrkit.decode.longform`) are rows under its utt-id, ``piece`` their
    order (0 for a whole utterance)."""

    names: list[str]
    frames: list[int]
    enc: Any
    piece: list[int]


def encode_store(exp, store, *, batch_size: int = 16, utts: Optional[Sequence[str]] = None,
                 on_batch: Optional[Callable[[int], None]] = None,
                 max_frames: Optional[int] = None) -> list[EncodedBatch]:
    """The encoder output of every utterance of ``store``, in length-sorted batches (kept on the
    model's device), so that many searches reuse one encoder pass (``asrkit tune``); ``max_frames``:
    longer utterances as pieces cut at pauses, as :func:`attention_decode` searches them (a search
    joins the pieces' hypotheses in ``piece`` order, :func:`joined_tokens`)."""
    from asrkit.decode.emissions import map_batches

    out: list[EncodedBatch] = []

    def run(names: list[str], feats: Tensor, lengths: Tensor) -> list[tuple[int, int]]:
        enc = exp.model.encode(feats.to(exp.device), lengths.to(exp.device))
        out.append(EncodedBatch(list(names), [int(n) for n in lengths.tolist()], enc, [0] * len(names)))
        return [(len(out) - 1, b) for b in range(len(names))]

    for rows in map_batches(store, run, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size, utts=utts,
                            input_dim=exp.input_dim, on_batch=on_batch, max_frames=max_frames,
                            join=lambda _u, parts, _starts: parts, multiple=exp.subsampling):
        if isinstance(rows, list):  # a long utterance's pieces, in order
            for k, (i, b) in enumerate(rows):
                out[i].piece[b] = k
    return out


def joined_tokens(batches: Sequence[EncodedBatch], results: Sequence[Sequence[Sequence[str]]]) -> dict[str, list[str]]:
    """Each utterance's tokens from the searches of ``batches`` (``results[i][row]``: the tokens
    of row ``row`` of batch ``i``): one row's, or a long utterance's pieces' joined in order."""
    parts: dict[str, list[tuple[int, Sequence[str]]]] = {}
    for batch, found in zip(batches, results):
        for name, k, tokens in zip(batch.names, batch.piece, found):
            parts.setdefault(name, []).append((k, tokens))
    return {u: [t for _, tokens in sorted(p, key=lambda x: x[0]) for t in tokens] for u, p in parts.items()}
