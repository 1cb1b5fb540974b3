"""Token units and targets from transcripts, for every task that writes text
(ctc, and the attention tasks): :class:`TokenTask`.

The units are an :class:`asrkit.data.tokenizer.Tokenizer` (an
:class:`asrkit.data.units.UnitMap` with ``<blank>`` at id 0, which decoding
reads back from the exp dir's ``units/``). ``units.kind=phone`` takes targets
from the store's ``text.phones`` when present (``sil`` dropped), else spells
``text`` with the lexicon; ``char``/``bpe`` encode ``text``. ``units.dir``
uses an existing units folder instead of making one. ``data.text`` /
``data.dev_text`` replace the stores' transcripts.

Dev metrics: PER for phone units, WER and CER for char and bpe
(:func:`score_tokens`); ``train.metric=auto`` picks PER or WER.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from asrkit.data.lexicon import UnknownWordError
from asrkit.data.table import read_table
from asrkit.data.units import UnitMap, save_units
from asrkit.errors import ConfigError, DataError
from asrkit.tasks.store import StoreTask

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["OOV_HINT", "PHONES_FILE", "TokenTask", "drop_unalignable", "score_tokens", "token_targets",
           "token_units"]

PHONES_FILE = "text.phones"
#: What to do about words the lexicon lacks, in 'asrkit train' terms (a config override).
OOV_HINT = ("give their pronunciations in a lexicon file (Kaldi lexicon.txt or CMU dict) with the override "
            "units.lexicon=FILE, or drop their utterances from the training data")


def _table(store, name: str, override: str | None) -> dict[str, str] | None:
    if override is not None:
        return read_table(override)
    p = Path(store.path) / name
    return read_table(p) if p.exists() else None


def token_units(kind: str, train_store, units_dir: str | None, text_override: str | None,
                work_dir: Path, vocab_size: int, lexicon: str | None, text_format: str = "kaldi") -> UnitMap:
    """The tokenizer: loaded from ``units_dir`` or trained into ``work_dir``
    (on ``text_override``, else the store's ``text``; ``text_format`` as
    :func:`asrkit.data.transcripts.read_training_text` takes it)."""
    from asrkit.data.tokenizer import PHONE_UNITS, Tokenizer, train_tokenizer
    from asrkit.data.units import load_units_dir

    if units_dir is not None:
        return load_units_dir(units_dir, kind)
    text_path = Path(text_override) if text_override else Path(train_store.path) / "text"
    if kind == "phone" and text_override is None and (Path(train_store.path) / PHONES_FILE).exists():
        from asrkit.data.lexicon import Lexicon

        tok = Tokenizer("phone", PHONE_UNITS, lexicon=Lexicon.default(),
                        config={"lexicon": {"user": None, "cmudict": True}})
        tok.save(work_dir)
        return UnitMap(kind, list(tok.units), tok)
    if not text_path.exists():
        raise DataError(f"{text_path}: no transcripts; training needs the store's text (or data.text=FILE)")
    res = train_tokenizer(kind, text_path, work_dir, vocab_size=vocab_size if kind == "bpe" else None,
                          text_format=text_format, lexicons=[lexicon] if lexicon else (), oov_hint=OOV_HINT)
    return UnitMap(kind, list(res.tokenizer.units), Tokenizer.load(work_dir))


def token_targets(store, utts: list[str], units: UnitMap, text_override: str | None) -> tuple[dict, dict]:
    """(utt -> token ids ``(U,)``, utt -> reference tokens for scoring)."""
    import numpy as np

    tok = units.tokenizer
    phones = None
    if units.kind == "phone" and text_override is None:
        phones = _table(store, PHONES_FILE, None)
    text = _table(store, "text", text_override)
    where = text_override or f"{store.path}/text"
    if phones is None and text is None:
        raise DataError(f"{store.path}: no text (or text.phones); training and scoring need transcripts")
    ids: dict[str, np.ndarray] = {}
    refs: dict[str, list[str]] = {}
    for u in utts:
        if phones is not None:
            line = phones.get(u)
            if line is None:
                raise DataError(f"{store.path}/{PHONES_FILE}: no phones for utterance '{u}'")
            syms = [p for p in line.split() if p != "sil"]
            try:
                seq = tok.encode_units(syms)  # type: ignore[union-attr]
            except DataError as e:
                raise DataError(f"{store.path}/{PHONES_FILE}: utterance '{u}': {e}") from None
            refs[u] = syms
        else:
            line = text.get(u)  # type: ignore[union-attr]
            if line is None:
                raise DataError(f"{where}: no transcript for utterance '{u}'")
            words = line.split()
            try:
                seq = tok.encode(words)  # type: ignore[union-attr]
            except UnknownWordError as e:
                raise UnknownWordError(f"{where}: utterance '{u}': {e}; {OOV_HINT}", e.words) from None
            except DataError as e:
                raise DataError(f"{where}: utterance '{u}': {e}") from None
            refs[u] = tok.decode(seq) if units.kind == "phone" else words  # type: ignore[union-attr]
        arr = np.asarray(seq, dtype=np.int64)
        if arr.size and (arr.min() <= 0 or arr.max() >= units.num_classes):
            bad = int(arr[(arr <= 0) | (arr >= units.num_classes)][0])
            raise DataError(f"utterance '{u}': label id {bad} is out of range (targets must be in "
                            f"1..{units.num_classes - 1}; 0 is the blank)")
        ids[u] = arr
    return ids, refs


def drop_unalignable(store, utts: list[str], targets: dict[str, np.ndarray],
                     model: torch.nn.Module) -> tuple[list[str], str | None]:
    """The utterances with no more targets than the model's output frames (what
    CTC can align), and a warning line about the others."""
    import torch

    outlen = getattr(model, "output_lengths", None)
    sub = getattr(model, "subsampling", 1)
    frames = torch.tensor([store.num_frames(u) for u in utts])
    olens = outlen(frames).tolist() if outlen else (frames // sub).tolist()
    keep = [u for u, n in zip(utts, olens) if len(targets[u]) <= n]
    if len(keep) == len(utts):
        return keep, None
    return keep, (f"{len(utts) - len(keep)} training utterance(s) have more target units than output frames "
                  f"(after x{sub} subsampling) and are left out")


def score_tokens(utts: list[str], refs: dict[str, list[str]], hyps: dict[str, list[str]],
                 units: UnitMap) -> dict[str, float]:
    """``{"per": ...}`` for phone units, ``{"wer": ..., "cer": ...}`` otherwise (percent)."""
    from asrkit.score import score

    ordered = {u: refs[u] for u in utts}
    if units.kind == "phone":
        return {"per": float(score(ordered, hyps).wer or 0.0)}
    r = score(ordered, hyps, cer=True)
    return {"wer": float(r.wer or 0.0), "cer": float(r.cer or 0.0)}


class TokenTask(StoreTask):
    """A task whose targets are token sequences of the transcripts (phone, char
    or bpe units; PER or WER/CER on dev). Subclasses add the model, the loss
    and :meth:`evaluate` (with :func:`score_tokens` for the metrics)."""

    train_needs = "'text' (or 'text.phones')"
    unit_kinds = ("phone", "char", "bpe")
    metrics = {"per": "min", "wer": "min", "cer": "min"}

    def validate(self) -> None:
        super().validate()
        kind, m = self.cfg["units"]["kind"], self.cfg["train"]["metric"]
        if m == "per" and kind != "phone":
            raise ConfigError(f"train.metric=per needs phone units (units.kind is {kind})")
        if m in ("wer", "cer") and kind == "phone":
            raise ConfigError(f"train.metric={m} needs char or bpe units; phone units give per")

    def auto_metric(self) -> str:
        return "per" if self.cfg["units"]["kind"] == "phone" else "wer"

    def make_units(self, train_store, units_dir: Path) -> None:
        u, d = self.cfg["units"], self.cfg["data"]
        if u["dir"] is not None:
            units = token_units(u["kind"], train_store, u["dir"], d["text"], units_dir, u["vocab_size"],
                                u["lexicon"])
            save_units(units, units_dir, u["dir"])
            return
        # trained into a temp folder next to it, then renamed: a kill leaves no half-made units/
        tmp = units_dir.parent / ".units.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        token_units(u["kind"], train_store, None, d["text"], tmp, u["vocab_size"], u["lexicon"])
        shutil.rmtree(units_dir, ignore_errors=True)
        os.replace(tmp, units_dir)

    def load_units(self, units_dir: Path) -> UnitMap:
        from asrkit.data.units import load_units_dir

        return load_units_dir(units_dir, self.cfg["units"]["kind"], blank_first=True)

    def targets(self, store, utts: list[str], units: UnitMap, split: str) -> tuple[dict, dict]:
        return token_targets(store, utts, units, self.cfg["data"]["text" if split == "train" else "dev_text"])

    def sampler_weights(self, utts: list[str], targets: dict[str, np.ndarray]) -> list[float]:
        """Target tokens: the loss is a mean over the tokens of the global batch."""
        return [float(len(targets[u])) for u in utts]
