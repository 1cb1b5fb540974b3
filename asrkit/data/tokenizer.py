"""Output units for CTC and frame models: phone, char and bpe tokenizers.

A tokenizer lives in a folder (the exp dir's ``units/``) written by
:func:`train_tokenizer` (``asrkit tokenizer train``) and read back by
:meth:`Tokenizer.load`:

``units.txt``
    Kaldi-style ``unit id`` lines, ids 0..V-1 in order. They fix the ids the
    model's output layer uses. Id 0 is always ``<blank>`` (the CTC blank).
``tokenizer.json``
    The kind and its settings (space symbol, lexicon sources, bpe model file)
    plus what training saw; written last, so a folder without it is not a
    finished tokenizer.
``bpe.model`` (bpe)
    The sentencepiece model; sentencepiece id ``k`` is unit id ``k + 1``.
``lexicon.txt``, ``text.phones`` (phone)
    Kaldi ``lexicon.txt`` spellings of the training words, and the training
    text spelled in phones (same format as the input: ``utt-id phones...`` for
    a Kaldi ``text``, one line of phones per line otherwise).
``lexicon.user.txt`` (phone, only with ``--lexicon``)
    The user lexicons merged, consulted before the CMU dict when encoding.

Unit inventories:

- ``phone``: ``<blank>`` 0, ``sil`` 1, then the 39 ARPAbet phones without
  stress, lower-case, in alphabetical order (ids 2..40). It is the label set
  of the synthesized corpora's ``ali`` / ``text.phones`` plus the blank, so a
  frame classifier (which never predicts ``<blank>``) and a CTC model (whose
  targets, spelled from the lexicon, never contain ``sil``) share one
  ``units.txt``. Words are spelled with their main (first) pronunciation.
- ``char``: ``<blank>`` 0, ``<unk>`` 1, ``|`` 2 (the space between words),
  then every character of the training text in code-point order; the
  apostrophe and every letter a-z (A-Z if the text has upper-case letters)
  are always in, so a letter missing from the training text still has an id.
  Characters not in the inventory encode as ``<unk>``.
- ``bpe``: ``<blank>`` 0, then the sentencepiece pieces (``<unk>`` first,
  ``▁`` marks a word start), vocab size V including the blank.
"""
from __future__ import annotations

import functools
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from asrkit.data.lexicon import ARPABET39, Lexicon, UnknownWordError, list_words
from asrkit.data.table import write_table
from asrkit.data.transcripts import Transcript, read_training_text
from asrkit.errors import DataError, InputError, UsageError, quote
from asrkit.io import atomic_write, display_name, iter_lines, read_text

__all__ = [
    "BLANK",
    "KINDS",
    "PHONE_UNITS",
    "SIL",
    "SPACE",
    "UNK",
    "Tokenizer",
    "TrainResult",
    "read_units",
    "train_tokenizer",
    "write_units",
]

BLANK = "<blank>"
UNK = "<unk>"
SPACE = "|"
SIL = "sil"
KINDS = ("phone", "char", "bpe")
BPE_TYPES = ("unigram", "bpe")

#: The phone inventory, in id order.
PHONE_UNITS: tuple[str, ...] = (BLANK, SIL, *ARPABET39)

UNITS_FILE = "units.txt"
CONFIG_FILE = "tokenizer.json"
BPE_MODEL = "bpe.model"
LEXICON_FILE = "lexicon.txt"
USER_LEXICON_FILE = "lexicon.user.txt"
PHONE_TEXT_FILE = "text.phones"
_OWNED = (UNITS_FILE, BPE_MODEL, LEXICON_FILE, USER_LEXICON_FILE, PHONE_TEXT_FILE)

_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# units.txt


def write_units(path: str | os.PathLike, units: Sequence[str]) -> None:
    """Write ``unit id`` lines (ids 0..V-1 in order), atomically."""
    with atomic_write(path) as f:
        for i, unit in enumerate(units):
            f.write(f"{unit} {i}\n")


def read_units(path: str | os.PathLike, blank_first: bool = True) -> list[str]:
    """Read a ``units.txt``: ``unit id`` lines whose ids are exactly 0..V-1
    (any order) with distinct units; ``<blank>`` must be id 0 (unless not
    ``blank_first``: a frame classifier's labels). Returns the units in id
    order."""
    name = display_name(path)
    by_id: dict[int, str] = {}
    seen: dict[str, int] = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"\d+", parts[1]):
            raise InputError(f"{name}:{lineno}: expected 'unit id', got {quote(line)}")
        unit, i = parts[0], int(parts[1])
        if i in by_id:
            raise InputError(f"{name}:{lineno}: id {i} is used twice ({quote(by_id[i])} and {quote(unit)})")
        if unit in seen:
            raise InputError(f"{name}:{lineno}: unit {quote(unit)} is listed twice")
        by_id[i] = unit
        seen[unit] = lineno
    if not by_id:
        raise InputError(f"{name}: no units")
    n = len(by_id)
    if sorted(by_id) != list(range(n)):
        gap = next(i for i in range(n) if i not in by_id)
        raise InputError(f"{name}: ids must be 0..{n - 1} without gaps; id {gap} is missing")
    if blank_first and by_id[0] != BLANK:
        raise InputError(f"{name}: id 0 must be the CTC blank '{BLANK}', found '{by_id[0]}'")
    return [by_id[i] for i in range(n)]


# --------------------------------------------------------------------------
# Training text


# --------------------------------------------------------------------------
# The tokenizer


class Tokenizer:
    """Maps words to unit ids and back, for one unit kind.

    Attributes:
        kind: ``"phone"``, ``"char"`` or ``"bpe"``.
        units: the unit symbols in id order (``units[0] == "<blank>"``).
        blank_id: always 0.
        vocab_size: ``len(units)``, the size of the model's output layer.
        lexicon: (phone) the :class:`Lexicon` that spells words.

    Build one with :meth:`load` (a trained folder) or :func:`train_tokenizer`.
    """

    blank_id = 0

    def __init__(
        self,
        kind: str,
        units: Sequence[str],
        *,
        lexicon: Lexicon | Callable[[], Lexicon] | None = None,
        sp_model: bytes | None = None,
        config: dict | None = None,
        source: str = "<tokenizer>",
    ):
        if kind not in KINDS:
            raise UsageError(f"unknown tokenizer kind '{kind}'; use one of {', '.join(KINDS)}")
        self.kind = kind
        self.units: list[str] = list(units)
        self.source = source
        self.config = dict(config or {})
        self._ids = {u: i for i, u in enumerate(self.units)}
        if len(self._ids) != len(self.units):
            raise InputError(f"{source}: units are not distinct")
        if not self.units or self.units[0] != BLANK:
            raise InputError(f"{source}: id 0 must be '{BLANK}'")
        # A callable is loaded on first use: decoding never needs the lexicon,
        # and the CMU dictionary takes about a second to read.
        self._lexicon = lexicon
        self._sp = None
        self._sp_model = sp_model
        if kind == "phone":
            if lexicon is None:
                raise UsageError("a phone tokenizer needs a lexicon")
            missing = [p for p in PHONE_UNITS if p not in self._ids]
            if missing:
                raise InputError(f"{source}: phone units lack {', '.join(missing)}")
            self._skip_on_decode = {self.blank_id, self._ids[SIL]}
        elif kind == "char":
            for special in (UNK, SPACE):
                if special not in self._ids:
                    raise InputError(f"{source}: char units lack '{special}'")
            self._unk = self._ids[UNK]
            self._space = self._ids[SPACE]
            self._skip_on_decode = {self.blank_id}
        else:
            if sp_model is None:
                raise UsageError("a bpe tokenizer needs a sentencepiece model")
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=sp_model)
            pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
            if pieces != self.units[1:]:
                raise InputError(
                    f"{source}: {UNITS_FILE} and {BPE_MODEL} disagree ({len(self.units) - 1} units after "
                    f"'{BLANK}' vs {len(pieces)} sentencepiece pieces); retrain the tokenizer"
                )
            self._skip_on_decode = {self.blank_id}

    # -- basic properties -------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of units including ``<blank>``."""
        return len(self.units)

    def id_of(self, unit: str) -> int:
        """The id of a unit symbol; :class:`DataError` if it has none."""
        try:
            return self._ids[unit]
        except KeyError:
            raise DataError(f"unit {quote(unit)} is not in {self._units_name()}") from None

    def unit_of(self, i: int) -> str:
        """The unit symbol of an id; :class:`DataError` if out of range."""
        i = int(i)
        if not 0 <= i < len(self.units):
            raise DataError(f"unit id {i} is out of range: {self._units_name()} has ids 0..{len(self.units) - 1}")
        return self.units[i]

    def _units_name(self) -> str:
        return f"{self.source}/{UNITS_FILE}" if self.source != "<tokenizer>" else "the units"

    # -- words <-> ids --------------------------------------------------------

    def encode(self, words: Sequence[str]) -> list[int]:
        """Unit ids of a word sequence (a CTC target: never contains the blank).

        phone: each word's main pronunciation (:class:`UnknownWordError`, a
        :class:`DataError`, lists words the lexicon lacks); char: the letters
        with ``|`` between words, unknown characters as ``<unk>``; bpe: the
        sentencepiece segmentation. A string is split on whitespace first.
        """
        if isinstance(words, str):
            words = words.split()
        if self.kind == "phone":
            assert self.lexicon is not None
            return [self._phone_id(p, words) for p in self.lexicon.spell(words)]
        if self.kind == "char":
            ids: list[int] = []
            for k, word in enumerate(words):
                if k:
                    ids.append(self._space)
                ids.extend(self._ids.get(c, self._unk) for c in word)
            return ids
        assert self._sp is not None
        if not words:
            return []
        return [i + 1 for i in self._sp.encode(" ".join(words), out_type=int)]

    def _phone_id(self, phone: str, words: Sequence[str]) -> int:
        try:
            return self._ids[phone]
        except KeyError:
            bad = [w for w in words if phone in self.lexicon.pron(w)]  # type: ignore[union-attr]
            raise DataError(
                f"the lexicon spells '{bad[0] if bad else '?'}' with '{phone}', which is not one of the "
                f"units ({SIL} and the 39 ARPAbet phones); fix the lexicon entry"
            ) from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The output tokens of an id sequence: words for char and bpe, phones
        for phone units. ``<blank>`` ids (and ``sil`` for phones) are dropped;
        CTC repeat-collapsing is the decoder's job, done before this. An id
        outside ``0..V-1`` raises :class:`DataError`."""
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < len(self.units):
                self.unit_of(i)  # raises with the message
        kept = [i for i in ids if i not in self._skip_on_decode]
        if self.kind == "phone":
            return [self.units[i] for i in kept]
        if self.kind == "char":
            words: list[str] = []
            current: list[str] = []
            for i in kept:
                if i == self._space:
                    if current:
                        words.append("".join(current))
                    current = []
                else:
                    current.append(self.units[i])
            if current:
                words.append("".join(current))
            return words
        assert self._sp is not None
        return self._sp.decode([i - 1 for i in kept]).split()

    def encode_units(self, symbols: Iterable[str]) -> list[int]:
        """Ids of unit symbols as they are (e.g. the phone labels of an
        ``ali`` or ``text.phones`` line); an unknown symbol raises
        :class:`DataError`."""
        return [self.id_of(s) for s in symbols]

    def decode_units(self, ids: Iterable[int]) -> list[str]:
        """Unit symbols of ids, one per id, blanks included (e.g. per-frame
        predictions)."""
        return [self.unit_of(i) for i in ids]

    # -- files ------------------------------------------------------------

    def write_lexicon(self, path: str | os.PathLike, words: Iterable[str]) -> int:
        """Write Kaldi ``lexicon.txt`` spellings of ``words`` (phone kind);
        returns the number of lines. Unknown words raise
        :class:`UnknownWordError`."""
        if self.lexicon is None:
            raise UsageError(f"a {self.kind} tokenizer has no lexicon; lexicon.txt needs phone units")
        return self.lexicon.write(path, words)

    def save(self, out: str | os.PathLike) -> None:
        """Write ``units.txt``, the bpe model or user lexicon, and
        ``tokenizer.json`` (last) into folder ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).unlink(missing_ok=True)
        write_units(out / UNITS_FILE, self.units)
        config = dict(self.config)
        config.update({"format": "asrkit-tokenizer", "version": _FORMAT_VERSION, "kind": self.kind,
                       "blank": BLANK, "vocab_size": self.vocab_size})
        if self.kind == "bpe":
            assert self._sp_model is not None
            with atomic_write(out / BPE_MODEL, "wb") as f:
                f.write(self._sp_model)
            config["sentencepiece_model"] = BPE_MODEL
        if self.kind == "char":
            config.update({"space": SPACE, "unk": UNK})
        with atomic_write(out / CONFIG_FILE) as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        self.source = str(out)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Read a tokenizer folder written by ``asrkit tokenizer train``."""
        path = Path(path)
        name = str(path)
        if not path.is_dir():
            raise InputError(f"{name}: no such tokenizer folder (make one with 'asrkit tokenizer train')")
        if not (path / CONFIG_FILE).exists():
            raise InputError(f"{name}: no {CONFIG_FILE}; not a finished tokenizer (rerun 'asrkit tokenizer train')")
        try:
            config = json.loads(read_text(path / CONFIG_FILE))
        except json.JSONDecodeError as e:
            raise InputError(f"{name}/{CONFIG_FILE}: not valid JSON ({e.msg}, line {e.lineno})") from None
        kind = config.get("kind")
        if kind not in KINDS:
            raise InputError(f"{name}/{CONFIG_FILE}: unknown kind {kind!r}")
        units = read_units(path / UNITS_FILE)
        lexicon = None
        sp_model = None
        if kind == "phone":
            lexicon = functools.partial(_phone_lexicon, path, config)
        elif kind == "bpe":
            model = path / config.get("sentencepiece_model", BPE_MODEL)
            try:
                sp_model = model.read_bytes()
            except FileNotFoundError:
                raise InputError(f"{model}: no such file (the bpe tokenizer's sentencepiece model)") from None
        return cls(kind, units, lexicon=lexicon, sp_model=sp_model, config=config, source=name)

    @property
    def lexicon(self) -> Lexicon | None:
        """(phone) the :class:`Lexicon` that spells words, loaded on first use."""
        if callable(self._lexicon):
            self._lexicon = self._lexicon()
        return self._lexicon

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, source={self.source!r})"


def _phone_lexicon(path: Path, config: dict) -> Lexicon:
    sources = config.get("lexicon", {})
    lexicons = []
    user = sources.get("user")
    if user:
        lexicons.append(Lexicon.load(path / user))
    if sources.get("cmudict", True):
        lexicons.append(Lexicon.default())
    if not lexicons:
        raise InputError(f"{path}/{CONFIG_FILE}: the phone tokenizer names no lexicon")
    return lexicons[0] if len(lexicons) == 1 else Lexicon.combine(lexicons)


# --------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    """What :func:`train_tokenizer` made and saw."""

    tokenizer: Tokenizer
    text_format: str
    utterances: int
    words: int
    skipped: list[str] = field(default_factory=list)  # utt ids (or 'line N') dropped for OOV words
    oov_words: list[str] = field(default_factory=list)
    user_lexicon: Lexicon | None = None  # (phone) the merged --lexicon files


def train_tokenizer(
    kind: str,
    text: str | os.PathLike,
    out: str | os.PathLike,
    *,
    vocab_size: int | None = None,
    oov: str = "error",
    bpe_type: str = "unigram",
    text_format: str = "auto",
    lexicons: Sequence[str | os.PathLike] = (),
    cmudict: bool = True,
    oov_hint: str | None = None,
) -> TrainResult:
    """Make a tokenizer from training text and save it in folder ``out``.

    Args:
        kind: ``phone``, ``char`` or ``bpe``.
        text: a Kaldi ``text`` or plain lines of words (see :func:`asrkit.data.transcripts.read_training_text`).
        out: the folder to write (created; files of an earlier tokenizer there
            are replaced).
        vocab_size: (bpe only, required) the number of units including ``<blank>``.
        oov: (phone) ``error`` stops on words missing from the lexicon,
            listing them; ``skip`` drops the utterances that have any.
        bpe_type: sentencepiece ``unigram`` or ``bpe`` model.
        text_format: ``auto``, ``kaldi`` or ``plain``.
        lexicons: (phone) extra lexicon files, consulted in order before the
            shipped CMU dict.
        cmudict: (phone) use the shipped CMU dict (after ``lexicons``).
        oov_hint: (phone) how the caller fixes words missing from the lexicon
            (default: this function's ``--lexicon`` / ``--oov`` options).
    """
    if kind not in KINDS:
        raise UsageError(f"unknown --kind '{kind}'; use one of {', '.join(KINDS)}")
    if oov not in ("error", "skip"):
        raise UsageError(f"unknown --oov '{oov}'; use error or skip")
    if bpe_type not in BPE_TYPES:
        raise UsageError(f"unknown --bpe-type '{bpe_type}'; use one of {', '.join(BPE_TYPES)}")
    if kind == "bpe" and vocab_size is None:
        raise UsageError("--kind bpe needs --vocab-size N (the number of units including <blank>)")
    if kind != "bpe" and vocab_size is not None:
        raise UsageError(f"--vocab-size applies to --kind bpe only; {kind} units are fixed by the text")
    if kind != "phone" and (lexicons or not cmudict):
        raise UsageError("--lexicon / --no-cmudict apply to --kind phone only")
    if vocab_size is not None and vocab_size < 2:
        raise UsageError(f"--vocab-size must be at least 2, got {vocab_size}")

    transcripts, fmt = read_training_text(text, text_format)
    name = display_name(text)
    n_words = sum(len(t.words) for t in transcripts)
    if n_words == 0:
        raise InputError(f"{name}: the text has no words")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    config: dict = {"train": {"text": name, "text_format": fmt, "utterances": len(transcripts), "words": n_words}}

    if kind == "phone":
        result = _train_phone(transcripts, fmt, name, out, config, oov, lexicons, cmudict, oov_hint)
    elif kind == "char":
        tok = Tokenizer("char", _char_units(transcripts, name), config=config)
        result = TrainResult(tok, fmt, len(transcripts), n_words)
    else:
        config["bpe_type"] = bpe_type
        model = _train_sentencepiece(transcripts, name, vocab_size - 1, bpe_type)  # type: ignore[operator]
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_proto=model)
        units = [BLANK] + [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        tok = Tokenizer("bpe", units, sp_model=model, config=config)
        result = TrainResult(tok, fmt, len(transcripts), n_words)

    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).unlink(missing_ok=True)
    for stale in _OWNED:
        (out / stale).unlink(missing_ok=True)
    if kind == "phone":
        _write_phone_files(result, transcripts, out)
    result.tokenizer.save(out)
    return result


def _char_units(transcripts: list[Transcript], name: str) -> list[str]:
    chars = {c for t in transcripts for w in t.words for c in w}
    if SPACE in chars:
        raise DataError(f"{name}: the text contains '{SPACE}', the char tokenizer's word separator")
    specials = {BLANK, UNK}
    chars -= specials
    chars.add("'")
    if any("a" <= c <= "z" for c in chars):
        chars.update(chr(c) for c in range(ord("a"), ord("z") + 1))
    if any("A" <= c <= "Z" for c in chars):
        chars.update(chr(c) for c in range(ord("A"), ord("Z") + 1))
    return [BLANK, UNK, SPACE, *sorted(chars)]


def _train_phone(
    transcripts: list[Transcript],
    fmt: str,
    name: str,
    out: Path,
    config: dict,
    oov: str,
    lexicon_paths: Sequence[str | os.PathLike],
    cmudict: bool,
    oov_hint: str | None = None,
) -> TrainResult:
    if not lexicon_paths and not cmudict:
        raise UsageError("--no-cmudict needs at least one --lexicon FILE")
    user = [Lexicon.load(p) for p in lexicon_paths]
    user_lex = Lexicon.combine(user, name="+".join(display_name(p) for p in lexicon_paths)) if user else None
    chain = ([user_lex] if user_lex else []) + ([Lexicon.default()] if cmudict else [])
    lexicon = chain[0] if len(chain) == 1 else Lexicon.combine(chain)
    config["lexicon"] = {"user": USER_LEXICON_FILE if user_lex else None, "cmudict": cmudict}

    missing = lexicon.missing(w for t in transcripts for w in t.words)
    skipped: list[str] = []
    if missing and oov == "error":
        raise UnknownWordError(
            f"{name}: {len(missing)} word(s) not in the lexicon ({lexicon.name}): {list_words(missing)}; "
            f"{oov_hint or 'add them with --lexicon FILE or drop their utterances with --oov skip'}",
            missing,
        )
    if missing:
        miss = set(missing)
        skipped = [t.utt or f"line {k + 1}" for k, t in enumerate(transcripts) if any(w in miss for w in t.words)]
        if len(skipped) == len(transcripts):
            raise DataError(f"{name}: every utterance has a word missing from the lexicon ({list_words(missing)})")
    config["train"].update({"skipped_utterances": len(skipped), "oov_words": len(missing),
                            "oov_examples": missing[:100]})
    tok = Tokenizer("phone", PHONE_UNITS, lexicon=lexicon, config=config)
    # Check the spellings use only the inventory's phones, naming the word if not.
    miss_set = set(missing)
    for w in dict.fromkeys(w for t in transcripts for w in t.words if w not in miss_set):
        for p in lexicon.pron(w):
            if p not in PHONE_UNITS or p == BLANK:
                raise DataError(
                    f"the lexicon spells '{w}' as '{' '.join(lexicon.pron(w))}': '{p}' is not one of the "
                    f"39 ARPAbet phones (no stress); fix that entry"
                )
    return TrainResult(tok, fmt, len(transcripts), sum(len(t.words) for t in transcripts), skipped, missing,
                       user_lexicon=user_lex)


def _write_phone_files(result: TrainResult, transcripts: list[Transcript], out: Path) -> None:
    tok = result.tokenizer
    assert tok.lexicon is not None
    skipped = set(result.skipped)
    kept = [t for k, t in enumerate(transcripts) if (t.utt or f"line {k + 1}") not in skipped]
    words = [w for t in kept for w in t.words]
    tok.lexicon.write(out / LEXICON_FILE, words)
    if result.text_format == "kaldi":
        write_table(out / PHONE_TEXT_FILE, {t.utt: tok.lexicon.spell(t.words) for t in kept})  # type: ignore[misc]
    else:
        with atomic_write(out / PHONE_TEXT_FILE) as f:
            for t in kept:
                f.write(" ".join(tok.lexicon.spell(t.words)) + "\n")
    if result.user_lexicon is not None:
        result.user_lexicon.write(out / USER_LEXICON_FILE)


def _train_sentencepiece(transcripts: list[Transcript], name: str, pieces: int, bpe_type: str) -> bytes:
    """Train a sentencepiece model in memory, deterministically (one thread,
    input in file order, no sampling, identity normalization)."""
    import sentencepiece as spm

    sentences = [" ".join(t.words) for t in transcripts if t.words]
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type=bpe_type,
            vocab_size=pieces,
            character_coverage=1.0,
            normalization_rule_name="identity",
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            unk_surface=UNK,
            num_threads=1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        m = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", msg)
        if m:
            need = int(m.group(2)) + 1  # sentencepiece's required pieces + <blank>
            raise UsageError(
                f"--vocab-size {pieces + 1} is too small for bpe on {name}: its characters alone need "
                f"{need} units (with <unk>, the word-start mark and <blank>); use at least {need}"
            ) from None
        m = re.search(r"too high \((\d+)\)\. Please set it to a value <= (\d+)", msg)
        if m:
            raise UsageError(
                f"--vocab-size {pieces + 1} is too large for bpe on {name}: the text supports at most "
                f"{int(m.group(2)) + 1} units; use a smaller --vocab-size or more text"
            ) from None
        raise DataError(f"{name}: sentencepiece training failed: {msg}") from None
    return model.getvalue()
