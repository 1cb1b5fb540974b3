"""``asrkit train lm``: a neural language model (:mod:`asrkit.models.lm`:
``lm_lstm``, ``lm_transformer``) on text.

Input: ``--text TRAIN`` and ``--dev DEV``, UTF-8 text files of one sentence
per line, words separated by white space (normalized as the transcripts the
LM will score: the same case and punctuation). ``data.text_format``:
``plain`` (the default: every field is a word), ``kaldi`` (a Kaldi ``text``:
the first field of every line is an utterance id and is dropped; duplicate
ids are an error) or ``auto`` (Kaldi when the first fields of all lines are
distinct and each has a digit, ``-`` or ``_``, as
:func:`asrkit.data.transcripts.read_training_text` decides). A plain text
whose first fields look like utterance ids gets a warning. Blank lines are
skipped.

Units (``units.kind``): ``word`` (the default), ``char`` or ``bpe``. Id 0 is
the sentence boundary. ``word``: ``<eos>`` 0, ``<unk>`` 1, then the training
text's words by falling count (ties alphabetical), at most
``units.vocab_size`` units in all (the two specials included); other words
are ``<unk>``. ``char`` / ``bpe``: the units of the acoustic tasks, made by
the same code from the training text (:func:`asrkit.tasks.tokens.token_units`;
id 0 is their ``<blank>``), so an LM and an attention model with units of one
kind share ids; ``units.dir=EXP/units`` takes an existing units folder (e.g.
the attention model's, for shallow fusion).

Training data: the sentences joined with id 0 into one stream, cut into
blocks of ``data.bptt`` tokens (``data.variable_bptt``: AWD-LSTM's random
lengths), in shuffled batches of ``data.batch_blocks`` blocks
(:mod:`asrkit.data.text_blocks`). Blocks are stateless: each starts from an
empty history, nothing is carried over from the block before it.

Loss: the summed cross entropy of every target token of the global batch
divided by its tokens (mean token cross entropy, nats). Dev, after each epoch:
every dev sentence ``w1 .. wn`` fed as ``0 w1 .. wn`` and scored on
``w1 .. wn 0`` from an empty history (as ``asrkit lm ppl`` and rescoring
score sentences; a sentence longer than a Transformer's ``max_len`` is
scored in pieces of ``max_len``), giving ``loss`` (per token), ``ppl`` (token
perplexity, ``exp(loss)``), ``word_ppl`` (``exp(total / (words +
sentences))``: per word and sentence end, comparable between word, char and
bpe units; OOV words are scored as ``<unk>``) and, for word units, ``oov`` (%
of the dev words outside the vocabulary). ``train.metric=auto`` is ``ppl``.
"""
from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrkit.errors import ConfigError, DataError, InputError
from asrkit.tasks.base import Task, TaskData, TrainData, dev_batches, gather, register_task

if TYPE_CHECKING:
    import torch

    from asrkit.data.units import UnitMap

__all__ = ["LMTask", "LMText", "encode_sentences", "read_lm_text", "word_units"]

#: ``data.text_format`` values
TEXT_FORMATS = ("plain", "kaldi", "auto")
UNK_ID = 1


@dataclass
class LMText:
    """The sentences of one text file: words per sentence, and a name per
    sentence for messages (its utterance id, or ``line N``)."""

    path: str
    sentences: list[list[str]]
    names: list[str]
    format: str  # plain | kaldi
    #: read as plain text, but the first field of every line looks like an utterance id
    ids_as_words: bool = False

    @property
    def words(self) -> int:
        return sum(len(s) for s in self.sentences)


def read_lm_text(path: str | os.PathLike, text_format: str = "plain", *, what: str = "text") -> LMText:
    """The sentences of ``path`` (``text_format`` plain | kaldi | auto; the
    module docstring). An empty file (or one of blank lines only), a binary
    or non-UTF-8 file, and a text without words raise :class:`InputError`."""
    from asrkit.data.transcripts import looks_like_utt_ids, read_training_text
    from asrkit.io import display_name

    name = display_name(path)
    if text_format not in TEXT_FORMATS:
        raise ConfigError(f"config key 'data.text_format': must be one of {', '.join(TEXT_FORMATS)} "
                          f"(got {text_format!r})")
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{name}: is a folder; the LM task reads a text file (one sentence per line)")
    try:
        lines, fmt = read_training_text(path, text_format)
    except InputError as e:
        if "invalid UTF-8" in str(e):
            raise InputError(f"{e}: not a UTF-8 text file (a binary file?); the {what} must be UTF-8 text, "
                             f"one sentence per line") from None
        if "the text is empty" in str(e):
            raise InputError(f"{name}: the {what} is empty (no sentences)") from None
        raise
    sentences = [t.words for t in lines if t.words]
    for t in lines:
        if any("\x00" in w for w in t.words):
            raise InputError(f"{name}: holds NUL bytes (a binary file?); the {what} must be UTF-8 text, "
                             f"one sentence per line")
    if not sentences:
        raise InputError(f"{name}: the {what} has no words")
    if fmt == "kaldi":
        return LMText(str(path), sentences, [t.utt or "" for t in lines if t.words], fmt)
    ids = text_format == "plain" and len(lines) > 1 and looks_like_utt_ids([t.words[0] for t in lines])
    return LMText(str(path), sentences, [f"sentence {k + 1}" for k in range(len(sentences))], fmt, ids)


def word_units(text: LMText, vocab_size: int) -> list[str]:
    """The word units of ``text``: ``<eos>``, ``<unk>``, then its words by falling
    count, ties in alphabetical order, ``vocab_size`` units at most."""
    from asrkit.data.units import WORD_EOS, WORD_UNK

    counts = Counter(w for s in text.sentences for w in s)
    counts.pop(WORD_EOS, None)
    counts.pop(WORD_UNK, None)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return [WORD_EOS, WORD_UNK, *words[:max(0, vocab_size - 2)]]


def encode_sentences(text: LMText, units: UnitMap) -> list[list[int]]:
    """Unit ids of every sentence (never 0): words outside a word vocabulary
    (and characters outside a char inventory) are ``<unk>`` (id 1)."""
    if units.kind == "word":
        ids = {w: i for i, w in enumerate(units.units)}
        ids.pop(units.units[0], None)  # <eos> is no word of a sentence
        return [[ids.get(w, UNK_ID) for w in s] for s in text.sentences]
    tok = units.tokenizer
    assert tok is not None
    out = []
    for name, s in zip(text.names, text.sentences):
        try:
            out.append(tok.encode(s))
        except DataError as e:
            raise DataError(f"{text.path}: {name}: {e}") from None
    return out


def _num_tokens(batch: Any) -> float:
    return float(batch.num_tokens)


@register_task
class LMTask(Task):
    name = "lm"
    help = "Neural language model (LSTM or Transformer) on text: word, char or bpe units; dev perplexity."
    train_needs = "one sentence per line"
    conf_example = "conf/lm_lstm.yaml, conf/lm_transformer.yaml"
    model_types = ("lm_lstm", "lm_transformer")
    unit_kinds = ("word", "char", "bpe")
    metrics = {"ppl": "min", "word_ppl": "min"}
    percent_metrics = ("oov",)
    #: the ``asrkit train lm`` options of the two inputs, and their help
    train_option = "--text"
    train_help = "Training text, UTF-8 (data.text_format=kaldi: a Kaldi text, utt-id first)."
    dev_help = "Dev text (same format), scored after each epoch."

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {"type": "lm_lstm", "impl": "scratch"},
                "units": {"kind": "word", "vocab_size": 10000},
                "features": {"specaugment": False},
                "optim": {"warmup_steps": 100}}

    @classmethod
    def config_keys(cls) -> dict:
        return {"data": {
            "bptt": (35, (int,), None),                 # tokens per training block
            "batch_blocks": (32, (int,), None),         # blocks per global batch
            "variable_bptt": (False, (bool,), None),    # AWD-LSTM's random block lengths
            "text_format": ("plain", (str,), TEXT_FORMATS),
        }}

    # ------------------------------------------------------------------ config
    def validate(self) -> None:
        super().validate()
        d, u = self.cfg["data"], self.cfg["units"]
        for key in ("bptt", "batch_blocks"):
            if d[key] < 1:
                raise ConfigError(f"config key 'data.{key}': must be >= 1 (got {d[key]})")
        if u["kind"] == "word" and u["dir"] is None and u["vocab_size"] < 3:
            raise ConfigError(f"config key 'units.vocab_size': word units need at least 3 (<eos>, <unk> and a "
                              f"word; got {u['vocab_size']})")

    def check_config(self) -> None:
        m = dict(self.cfg["model"])
        # the units (so num_classes) come later: a placeholder above the adaptive cutoffs, which the
        # build checks against the real count
        cut = m.get("adaptive_cutoffs")
        top = max((v for v in cut if isinstance(v, int)), default=0) if isinstance(cut, (list, tuple)) else 0
        m.setdefault("num_classes", max(2, top + 1))
        m = self.resolve_model_config(m)
        if m["type"] not in self.model_types:
            raise ConfigError(f"model.type: the lm task trains an 'lm_lstm' or 'lm_transformer' model "
                              f"(got {m['type']!r})")
        if m["type"] == "lm_transformer" and self.longest_block() > m["max_len"]:
            raise ConfigError(f"data.bptt={self.cfg['data']['bptt']}: training blocks of up to "
                              f"{self.longest_block()} tokens are longer than model.max_len={m['max_len']}")

    def longest_block(self) -> int:
        """The most inputs a training block has (``data.bptt``, + 10 with ``variable_bptt``)."""
        from asrkit.data.text_blocks import VAR_OVER

        d = self.cfg["data"]
        return d["bptt"] + (VAR_OVER if d["variable_bptt"] else 0)

    # ------------------------------------------------------------------ data
    def open_data(self, train: str, dev: str) -> TaskData:
        fmt = self.cfg["data"]["text_format"]
        tr = read_lm_text(train, fmt, what="training text")
        dv = read_lm_text(dev, fmt, what="dev text")
        return TaskData(tr, dv, str(train), str(dev), input_dim=None)

    def train_data(self, data: TaskData, units: UnitMap, model: torch.nn.Module, *, seed: int,
                   dist) -> TrainData:
        from asrkit import log
        from asrkit.data.text_blocks import BlockBatchPlan, Sentences, TextBlocks, collate_blocks, join_sentences

        d = self.cfg["data"]
        for text in (data.train, data.dev):
            if text.ids_as_words and dist.main:
                log.warn(f"{text.path}: the first word of every line looks like an utterance id; if it is a "
                         f"Kaldi text, give data.text_format=kaldi (or auto) so that the ids are not read as words")
        if d["batch_blocks"] < dist.world_size:
            raise ConfigError(f"data.batch_blocks={d['batch_blocks']} is less than the {dist.world_size} "
                              f"processes; every process needs a block of every batch")
        train_ids = encode_sentences(data.train, units)
        dev_ids = encode_sentences(data.dev, units)
        for text, ids, what in ((data.train, train_ids, "training"), (data.dev, dev_ids, "dev")):
            known = sum(1 for s in ids for i in s if i != UNK_ID)
            if known == 0:
                raise DataError(f"{text.path}: none of the {what} text's {text.words} words is in the vocabulary "
                                f"of the units ({units.num_classes} {units.kind} units; every token is <unk>); "
                                f"is it a text of the same language and normalization?")
        stream = join_sentences(train_ids)
        blocks = TextBlocks(stream, d["bptt"], d["variable_bptt"], seed)
        plan = BlockBatchPlan(blocks, d["batch_blocks"], d["shuffle"], seed, dist.rank, dist.world_size)
        oov = None
        if units.kind == "word":
            oov = sum(1 for s in dev_ids for i in s if i == UNK_ID)
        dev = Sentences(dev_ids, data.dev.names, max_len=getattr(model, "max_len", None), words=data.dev.words,
                        oov=oov)
        return TrainData(blocks, plan, collate_blocks, dev, None,
                         train_items=f"{len(train_ids)} sentences, {len(stream) - 1} tokens ({len(blocks)} blocks "
                                     f"of {'about ' if d['variable_bptt'] else ''}{d['bptt']})",
                         dev_items=f"{len(dev_ids)} sentences", item="block", unit="tokens", count=_num_tokens,
                         nan_hint="try a lower optim.lr (or optim.grad_clip)")

    # ------------------------------------------------------------------ units
    def make_units(self, train: LMText, units_dir: Path) -> None:
        from asrkit.data.tokenizer import write_units
        from asrkit.data.units import save_units
        from asrkit.tasks.tokens import token_units

        u = self.cfg["units"]
        if u["dir"] is not None:
            save_units(self.load_units(Path(u["dir"])), units_dir, u["dir"])
            return
        # made in a temp folder next to it, then renamed: a kill leaves no half-made units/
        tmp = units_dir.parent / ".units.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if u["kind"] == "word":
            tmp.mkdir(parents=True)
            write_units(tmp / "units.txt", word_units(train, u["vocab_size"]))
        else:
            token_units(u["kind"], None, None, train.path, tmp, u["vocab_size"], None, text_format=train.format)
        shutil.rmtree(units_dir, ignore_errors=True)
        os.replace(tmp, units_dir)

    def load_units(self, units_dir: Path) -> UnitMap:
        from asrkit.data.units import load_units_dir

        return load_units_dir(units_dir, self.cfg["units"]["kind"])

    # ------------------------------------------------------------------ model, loss, dev
    def loss(self, net, batch, device, autocast):
        with autocast():
            logp = net(batch.inputs, batch.targets)  # (B, L) log P(target), 0 at padding
        return -logp.float().sum(), float(batch.num_tokens), {}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        from asrkit.data.text_blocks import collate_blocks

        nll = tokens = 0.0
        budget = self.cfg["data"]["batch_blocks"] * self.cfg["data"]["bptt"]  # padded tokens, as a training batch
        for idx in dev_batches(dev_ds, budget, dist):
            b = collate_blocks([dev_ds[i] for i in idx]).to(device)
            with autocast():
                logp = model(b.inputs, b.targets)  # (B, L), 0 at padding
            nll -= float(logp.float().sum())
            tokens += b.num_tokens
        parts = gather((nll, tokens), dist)
        nll, tokens = sum(p[0] for p in parts), sum(p[1] for p in parts)
        loss = nll / tokens if tokens else float("nan")
        out = {"loss": loss, "ppl": _exp(loss),
               "word_ppl": _exp(nll / (dev_ds.words + dev_ds.num_sentences))}
        if dev_ds.oov is not None:
            out["oov"] = 100.0 * dev_ds.oov / max(1, dev_ds.words)
        return out


def _exp(x: float) -> float:
    """``exp(x)``, capped at ``exp(700)`` (a perplexity must stay a finite JSON number)."""
    return math.exp(min(x, 700.0)) if math.isfinite(x) else float("nan")
