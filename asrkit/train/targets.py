"""Units and training targets for the trainer.

Both give an :class:`asrkit.data.units.UnitMap` (the one unit map, which
decoding reads back from the exp dir's ``units/``).

* frame task: labels from the feature store's ``ali``. The exp's ``units/``
  holds ``units.txt`` with ``<blank>`` at id 0 (never a target, so the file
  reads with :func:`asrkit.data.tokenizer.read_units`) and the labels after it.
  When every label is one of the phone units (``sil`` + 39 ARPAbet), the
  units are exactly the phone tokenizer's (a full tokenizer folder is saved),
  so a frame classifier and a phone CTC model share ids. Otherwise the labels
  follow in sorted order (numerically when they are all integers).
* ctc task: a :class:`asrkit.data.tokenizer.Tokenizer`. ``units.kind=phone``
  takes targets from the store's ``text.phones`` when present (``sil``
  dropped), else spells ``text`` with the lexicon; ``char``/``bpe`` encode
  ``text``. ``units.dir`` uses an existing units folder instead of making one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from asrkit.data.lexicon import UnknownWordError
from asrkit.data.table import read_table
from asrkit.data.units import UnitMap, save_units
from asrkit.errors import DataError

__all__ = ["PHONES_FILE", "UnitMap", "ctc_targets", "ctc_units", "frame_targets", "frame_units", "save_units"]

PHONES_FILE = "text.phones"
#: What to do about words the lexicon lacks, in 'asrkit train ctc' terms (a config override).
OOV_HINT = ("give their pronunciations in a lexicon file (Kaldi lexicon.txt or CMU dict) with the override "
            "units.lexicon=FILE, or drop their utterances from the training data")


def _label_key(s: str):
    return (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s)


def _table(store, name: str, override: str | None) -> dict[str, str] | None:
    if override is not None:
        return read_table(override)
    p = Path(store.path) / name
    return read_table(p) if p.exists() else None


def frame_units(train_store, units_dir: str | None) -> UnitMap:
    """Units of the frame task: from ``units_dir`` or from the training ``ali``."""
    from asrkit.data.tokenizer import BLANK, PHONE_UNITS, Tokenizer
    from asrkit.data.units import load_units_dir

    if units_dir is not None:
        return load_units_dir(units_dir, "ali", blank_first=True)
    ali = train_store.ali
    if ali is None:
        raise DataError(f"{train_store.path}: no 'ali' file; the frame task needs frame labels "
                        f"(copy the data dir's ali into the feature store, or re-run asrkit featurize)")
    labels: set[str] = set()
    for v in ali.values():
        labels.update(v.split())
    if not labels:
        raise DataError(f"{train_store.path}/ali: has no labels")
    if labels <= set(PHONE_UNITS[1:]):
        from asrkit.data.lexicon import Lexicon

        tok = Tokenizer("phone", PHONE_UNITS, lexicon=Lexicon.default(),
                        config={"lexicon": {"user": None, "cmudict": True}})
        return UnitMap("ali", list(PHONE_UNITS), tok)
    if BLANK in labels:
        raise DataError(f"{train_store.path}/ali: '{BLANK}' cannot be a frame label")
    return UnitMap("ali", [BLANK, *sorted(labels, key=_label_key)])


def ctc_units(kind: str, train_store, units_dir: str | None, text_override: str | None,
              work_dir: Path, vocab_size: int, lexicon: str | None) -> UnitMap:
    """The CTC tokenizer: loaded from ``units_dir`` or trained into ``work_dir``."""
    from asrkit.data.tokenizer import PHONE_UNITS, Tokenizer, train_tokenizer
    from asrkit.data.units import load_units_dir

    if units_dir is not None:
        return load_units_dir(units_dir, kind)
    text_path = Path(text_override) if text_override else Path(train_store.path) / "text"
    phones_path = Path(train_store.path) / PHONES_FILE
    if kind == "phone" and text_override is None and phones_path.exists():
        from asrkit.data.lexicon import Lexicon

        tok = Tokenizer("phone", PHONE_UNITS, lexicon=Lexicon.default(),
                        config={"lexicon": {"user": None, "cmudict": True}})
        tok.save(work_dir)
        return UnitMap(kind, list(tok.units), tok)
    if not text_path.exists():
        raise DataError(f"{text_path}: no transcripts; ctc training needs the store's text "
                        f"(or data.text=FILE)")
    res = train_tokenizer(kind, text_path, work_dir, vocab_size=vocab_size if kind == "bpe" else None,
                          text_format="kaldi", lexicons=[lexicon] if lexicon else (), oov_hint=OOV_HINT)
    return UnitMap(kind, list(res.tokenizer.units), Tokenizer.load(work_dir))


def frame_targets(store, utts: list[str], units: UnitMap) -> dict[str, np.ndarray]:
    """utt -> frame label ids ``(T,)``; errors name the utterance."""
    ali = store.ali
    if ali is None:
        raise DataError(f"{store.path}: no 'ali' file; the frame task needs frame labels")
    out: dict[str, np.ndarray] = {}
    for u in utts:
        line = ali.get(u)
        if line is None:
            raise DataError(f"{store.path}/ali: no labels for utterance '{u}'; add its ali line "
                            f"or remove the utterance from the store")
        labs = line.split()
        ids = np.empty(len(labs), dtype=np.int64)
        for k, s in enumerate(labs):
            i = units.id_of(s)
            if i is None or i == 0:
                raise DataError(f"{store.path}/ali: utterance '{u}' frame {k}: label '{s}' is out of range "
                                f"of the units ({units.num_classes - 1} labels: "
                                f"{' '.join(units.units[1:8])}{' ...' if units.num_classes > 8 else ''})")
            ids[k] = i
        t = store.num_frames(u)
        if len(ids) != t:
            raise DataError(f"{store.path}/ali: utterance '{u}' has {len(ids)} labels but {t} feature frames; "
                            f"the alignment must have one label per frame of the features")
        out[u] = ids
    return out


def ctc_targets(store, utts: list[str], units: UnitMap, text_override: str | None) -> tuple[dict, dict]:
    """(utt -> token ids ``(U,)``, utt -> reference tokens for scoring)."""
    tok = units.tokenizer
    phones = None
    if units.kind == "phone" and text_override is None:
        phones = _table(store, PHONES_FILE, None)
    text = _table(store, "text", text_override)
    where = text_override or f"{store.path}/text"
    if phones is None and text is None:
        raise DataError(f"{store.path}: no text (or text.phones); ctc training and scoring need transcripts")
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
