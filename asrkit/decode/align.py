"""CTC forced alignment: where the units of a known transcript sit in time.

``asrkit align EXP FEATS --out DIR`` spells each utterance's transcript in the
model's units the way training built its targets (phones via the tokenizer's
lexicon, letters with ``|`` between words, sentencepiece pieces), runs the
model (:func:`asrkit.decode.emissions.iter_outputs`) and takes the Viterbi
CTC path of those units (:func:`asrkit.decode.timing.best_path`). From the
path's unit segments (output frames, ``subsampling`` feature frames each) it
makes

- frame labels, one per *feature* frame (``ali``, the input of
  ``asrkit train frame``): unit ``k`` starts at feature frame
  ``start_k * subsampling + offset`` (``offset`` in feature frames, measured:
  see :data:`DEFAULT_OFFSET`) and lasts until the next unit starts, except
  that at a word boundary (and after the last unit) it keeps at most ``hold``
  feature frames after its CTC segment ends; the frames left over, and those
  before the first unit, are ``sil``. So a blank frame belongs to the unit
  before it unless it sits in a long blank stretch between words.
- unit and word spans in feature frames (``units.ctm``, ``words.ctm``): a
  unit spans its frames in ``ali``; a word from its first unit's start to its
  last unit's end. ``|`` (the char models' word separator) gets no frames and
  no CTM line.

:func:`asrkit.score.boundary.boundary_error` compares two frame labellings
of the same utterances (e.g. the corpus's exact ``ali`` and ours).

    exp = load_exp("exp/phone", task="ctc")
    results = align_store(exp, FeatureStore("feats/test"))
    write_alignments(results, "exp/phone/ali_test", frame_shift_ms=10)
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asrkit.data.tokenizer import SIL  # the label of frames that belong to no unit
from asrkit.decode.emissions import iter_outputs
from asrkit.decode.timing import best_path, unit_segments
from asrkit.errors import DataError, InputError, UsageError
from asrkit.io import atomic_write

__all__ = [
    "DEFAULT_HOLD", "DEFAULT_OFFSET", "SIL", "AlignedUtterance", "Target",
    "align_store", "frame_spans", "spell", "store_transcripts", "write_alignments",
]

#: Where a unit starts relative to the output frame its CTC segment starts
#: in: feature frame ``start * subsampling + DEFAULT_OFFSET``. Output frame
#: ``j`` of the Conv2d front end (kernel 3, stride 2, twice) is centred on
#: feature frame ``4 j``, and the spike comes as the phone begins, so a
#: phone starts a little before that centre. Tuned on the tiny corpus's dev
#: set (benchmarks/align_bench.py): mean boundary error 30.5 ms at 0 (the
#: output frame's start), 19.7 at -2, 19.3 at -3, 22.5 at -4.
DEFAULT_OFFSET = -3
#: At a word boundary (and after the last unit), the most feature frames a
#: unit keeps after its CTC segment ends; the rest of the blank stretch is
#: ``sil``. Tuned on dev by frame accuracy against the exact ``ali``: 73.7%
#: when blanks always belong to the unit before (no ``sil`` after the first
#: unit), 76.3% with 8, 75.8% with 12, 75.6% with 4.
DEFAULT_HOLD = 8

_NO_FRAMES = {"|"}  # units that mark word boundaries and get no frames


@dataclass
class Target:
    """An utterance's transcript in the model's units.

    Attributes:
        utt: utterance id.
        words: the transcript's words (empty when given as units).
        ids: unit ids (the CTC target).
        word_of: for each id, the index of its word in ``words`` (-1 for a
            word separator, or when there are no words).
    """

    utt: str
    words: list[str]
    ids: list[int]
    word_of: list[int]


@dataclass
class AlignedUtterance:
    """The forced alignment of one utterance.

    Attributes:
        utt: utterance id.
        frames: feature frames ``T`` (``len(labels)``).
        out_frames: model output frames ``T'``.
        labels: one label per feature frame (units and ``sil``).
        units: ``(symbol, start, end)`` per unit of the target, feature
            frames (end exclusive); word separators left out.
        words: ``(word, start, end)`` per word, feature frames.
        path: the CTC frame path ``(T',)`` (class per output frame).
        segments: ``(id, start, end)`` per unit in output frames.
        score: log-probability of the path.
        log_probs: the model's ``(T', C)`` log-probabilities (only with
            ``keep_log_probs``).
    """

    utt: str
    frames: int
    out_frames: int
    labels: list[str]
    units: list[tuple[str, int, int]]
    words: list[tuple[str, int, int]]
    path: torch.Tensor
    segments: list[tuple[int, int, int]]
    score: float
    log_probs: torch.Tensor | None = None


# ----------------------------------------------------------------- transcripts
def store_transcripts(store, text: str | os.PathLike | None = None) -> tuple[dict[str, str], str]:
    """The transcript table (utt -> words) of ``store``: its ``text`` or a
    transcript file (Kaldi text or trn, :func:`asrkit.data.transcripts.read_transcripts`);
    returns it and its name for messages."""
    from asrkit.data.transcripts import read_transcripts

    if text is not None:
        if not Path(text).is_file():
            raise InputError(f"{text}: no such file (--text: a Kaldi text, 'utt-id words...')")
        tr = read_transcripts(text)
        return {u: " ".join(words) for u, words in tr.utts.items()}, str(text)
    table = store.text
    if table is None:
        raise DataError(f"{store.path}: no 'text' file; align needs each utterance's transcript "
                        f"(copy the data dir's text into the store or give --text FILE)")
    return table, f"{store.path}/text"


def _shown(items: Sequence[str], limit: int = 5) -> str:
    more = len(items) - limit
    return ", ".join(items[:limit]) + (f" ... and {more} more" if more > 0 else "")


def spell(units, utt: str, words: Sequence[str]) -> Target:
    """The units of one transcript, with each unit's word (see :class:`Target`).

    phone: each word's main pronunciation from the tokenizer's lexicon (an
    unknown word raises :class:`DataError` via the tokenizer); char: letters,
    ``|`` between words; bpe: sentencepiece pieces of the whole line, words
    starting at ``▁`` pieces."""
    tok = units.tokenizer
    if tok is None:
        raise DataError(f"{units.source}: holds frame labels, not CTC units; align needs a CTC model")
    words = list(words)
    ids: list[int] = []
    word_of: list[int] = []
    if units.kind == "bpe":
        ids = tok.encode(words)
        k = -1
        for i in ids:
            if units.units[i].startswith("▁") or k < 0:
                k += 1
            word_of.append(min(k, len(words) - 1))
        return Target(utt, words, ids, word_of)
    if units.kind == "phone":
        tok.encode(words)  # raises UnknownWordError naming every word the lexicon lacks
    space = tok.id_of("|") if units.kind == "char" else None
    for k, w in enumerate(words):
        if k and space is not None:
            ids.append(space)
            word_of.append(-1)
        wid = tok.encode([w])
        ids.extend(wid)
        word_of.extend([k] * len(wid))
    return Target(utt, words, ids, word_of)


def make_targets(units, utts: Sequence[str], table: Mapping[str, str], where: str,
                 phones: Mapping[str, str] | None = None, oov: str = "error",
                 skipped: list[str] | None = None) -> list[Target]:
    """Targets of every utterance, checked before any model work: one error
    names the utterances without a transcript, or the words the lexicon
    cannot spell (``oov="skip"``: leave those utterances out instead and
    append their ids to ``skipped``). ``phones`` (utt -> unit symbols, e.g. a
    ``text.phones``) gives the units directly instead of spelling words
    (``sil`` dropped)."""
    from asrkit.data.lexicon import UnknownWordError

    source = phones if phones is not None else table
    missing = [u for u in utts if u not in source]
    if missing:
        raise DataError(f"{where}: no transcript for {len(missing)} of {len(utts)} utterance(s): "
                        f"{_shown(missing)}")
    targets: list[Target] = []
    if oov not in ("error", "skip"):
        raise UsageError(f"--oov must be error or skip, got '{oov}'")
    oov_words: dict[str, None] = {}
    oov_utts: list[str] = []
    for u in utts:
        if phones is not None:
            syms = [p for p in phones[u].split() if p != SIL]
            try:
                ids = units.tokenizer.encode_units(syms)
            except DataError as e:
                raise DataError(f"{where}: utterance '{u}': {e}") from None
            targets.append(Target(u, [], ids, [-1] * len(ids)))
            continue
        words = table[u].split()
        if not words:
            raise DataError(f"{where}: utterance '{u}' has an empty transcript")
        try:
            targets.append(spell(units, u, words))
        except UnknownWordError as e:
            oov_words.update(dict.fromkeys(e.words))
            oov_utts.append(u)
        except DataError as e:
            raise DataError(f"{where}: utterance '{u}': {e}") from None
    if skipped is not None:
        skipped.extend(oov_utts)
    if oov_words and oov == "skip":
        if not targets:
            raise DataError(f"{where}: every utterance has a word the lexicon cannot spell "
                            f"({_shown([repr(w) for w in oov_words])})")
        return targets
    if oov_words:
        words = list(oov_words)
        raise DataError(f"{where}: the lexicon cannot spell {len(words)} word(s): "
                        f"{_shown([repr(w) for w in words])} (in {len(oov_utts)} utterance(s), first "
                        f"'{oov_utts[0]}'); add them to the model's lexicon, or leave those utterances out with "
                        f"--oov skip")
    return targets


# ----------------------------------------------------------------- frames
def frame_spans(target: Target, segments: Sequence[tuple[int, int, int]], frames: int, subsampling: int,
                offset: float = DEFAULT_OFFSET, hold: int | None = DEFAULT_HOLD,
                separators: Sequence[int] = ()) -> list[tuple[int, int]]:
    """``(start, end)`` feature frames of each unit of ``target`` with frames
    (``separators`` left out), from its CTC ``segments`` (output frames, one
    per unit of ``target.ids`` in order).

    Unit ``k`` starts at ``round(seg_start * subsampling + offset)`` (kept
    inside ``0..frames`` and after the previous start) and ends where the next
    one starts; at a word boundary (any boundary when there are no words) and
    after the last unit it ends at most ``hold`` frames after its segment's
    end (``None``: never early; the last unit then runs to the end)."""
    keep = [k for k, i in enumerate(target.ids) if i not in separators]
    if len(segments) != len(target.ids):
        raise DataError(f"utterance {target.utt}: the path has {len(segments)} unit segments for "
                        f"{len(target.ids)} target units")
    segs = [segments[k] for k in keep]
    n = len(segs)
    starts: list[int] = []
    for j, (_, s, _) in enumerate(segs):
        b = math.floor(s * subsampling + offset + 0.5)
        lo = starts[-1] + 1 if starts else 0
        b = max(lo, min(b, frames - (n - j)))  # room for one frame per later unit
        starts.append(b)
    spans: list[tuple[int, int]] = []
    for j, (_, _, e) in enumerate(segs):
        nxt = starts[j + 1] if j + 1 < n else frames
        end = nxt
        boundary = j + 1 == n or target.word_of[keep[j]] < 0 or target.word_of[keep[j]] != target.word_of[keep[j + 1]]
        if hold is not None and boundary:
            end = min(nxt, max(starts[j] + 1, math.floor(e * subsampling + offset + 0.5) + hold))
        spans.append((starts[j], end))
    return spans


def _word_spans(target: Target, symbols: Sequence[str], spans: Sequence[tuple[int, int]],
                separators: Sequence[int]) -> list[tuple[str, int, int]]:
    keep = [k for k, i in enumerate(target.ids) if i not in separators]
    out: list[tuple[str, int, int]] = []
    for j, k in enumerate(keep):
        w = target.word_of[k]
        if w < 0:
            continue
        if out and w == len(out) - 1:
            word, s, _ = out[-1]
            out[-1] = (word, s, spans[j][1])
        else:
            while len(out) < w:  # a word without units (cannot happen with a lexicon)
                out.append((target.words[len(out)], spans[j][0], spans[j][0]))
            out.append((target.words[w], spans[j][0], spans[j][1]))
    return out


def _labels(symbols: Sequence[str], spans: Sequence[tuple[int, int]], frames: int) -> list[str]:
    labels = [SIL] * frames
    for sym, (s, e) in zip(symbols, spans):
        labels[s:e] = [sym] * (e - s)
    return labels


# ----------------------------------------------------------------- the store
def align_store(
    exp,
    store,
    *,
    text: str | os.PathLike | None = None,
    phones: Mapping[str, str] | None = None,
    batch_size: int = 16,
    utts: Sequence[str] | None = None,
    offset: float = DEFAULT_OFFSET,
    hold: int | None = DEFAULT_HOLD,
    oov: str = "error",
    skipped: list[str] | None = None,
    on_utterance: Callable[[], None] | None = None,
    keep_log_probs: bool = False,
) -> Iterator[AlignedUtterance]:
    """Forced-align every utterance of ``store`` (utt-id order) with the CTC
    model of ``exp`` (:class:`asrkit.decode.LoadedExp`).

    Transcripts come from the store's ``text`` or ``text`` (a Kaldi text
    file); ``phones`` (utt -> phone symbols) gives phone-model targets
    directly instead. All transcripts are checked before the model runs;
    ``oov="skip"`` leaves out utterances with words the lexicon cannot spell
    (their ids are appended to ``skipped``) instead of stopping.
    Raises :class:`DataError` for a missing transcript, words the lexicon
    cannot spell, or a transcript too long for the utterance's output frames.
    """
    units = exp.units
    if units.tokenizer is None:
        raise DataError(f"{exp.path}: is not a CTC model (its units are frame labels); align needs a CTC "
                        f"exp dir from 'asrkit train ctc'")
    keys = list(store.keys()) if utts is None else list(utts)
    if phones is not None:
        if units.kind != "phone":
            raise DataError(f"phone transcripts need a phone model; {exp.path} has {units.kind} units")
        table, where = {}, "phone transcripts"
    else:
        table, where = store_transcripts(store, text)
    targets = {t.utt: t for t in make_targets(units, keys, table, where, phones, oov, skipped)}
    keys = [u for u in keys if u in targets]
    seps = [i for i, s in enumerate(units.units) if s in _NO_FRAMES] if units.kind == "char" else []
    sub = exp.subsampling
    blank = units.blank_id if units.blank_id is not None else 0
    for out in iter_outputs(exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size,
                            device=exp.device, utts=keys, input_dim=exp.input_dim):
        if torch.isnan(out.log_probs).any():
            raise DataError(f"utterance {out.utt}: the model's output is NaN; the checkpoint or the features "
                            f"are broken (check them for NaN/inf)")
        tgt = targets[out.utt]
        path = best_path(out.log_probs, tgt.ids, blank=blank, utt=out.utt)
        segs = unit_segments(path, blank=blank)
        # repeated units are separate runs (best_path puts a blank between them), so runs == target units
        if [s[0] for s in segs] != tgt.ids:
            raise DataError(f"utterance {out.utt}: the Viterbi path does not spell the transcript "
                            f"(torchaudio forced_align returned an inconsistent path)")
        score = float(out.log_probs.gather(1, path[:, None]).sum())
        spans = frame_spans(tgt, segs, out.frames, sub, offset, hold, seps)
        syms = [units.units[i] for i in tgt.ids if i not in seps]
        res = AlignedUtterance(
            utt=out.utt, frames=out.frames, out_frames=out.out_frames, labels=_labels(syms, spans, out.frames),
            units=[(s, a, b) for s, (a, b) in zip(syms, spans)],
            words=_word_spans(tgt, syms, spans, seps), path=path, segments=segs, score=score,
            log_probs=out.log_probs if keep_log_probs else None)
        if on_utterance is not None:
            on_utterance()
        yield res


# ----------------------------------------------------------------- output
def _ctm(utt: str, spans: Sequence[tuple[str, int, int]], shift_s: float) -> Iterator[str]:
    for tok, s, e in spans:
        yield f"{utt} 1 {s * shift_s:.2f} {(e - s) * shift_s:.2f} {tok}\n"


@dataclass
class AlignSummary:
    """What :func:`write_alignments` wrote."""

    utterances: int = 0
    frames: int = 0
    units: int = 0
    words: int = 0
    sil_frames: int = 0
    score: float = 0.0
    files: list[str] = field(default_factory=list)


def write_alignments(results, out: str | os.PathLike, frame_shift_ms: float | None = None) -> AlignSummary:
    """Write ``out/ali`` (``utt-id label ...``, one label per feature frame),
    ``out/units.ctm`` and ``out/words.ctm`` (``utt-id 1 start dur token``,
    seconds with 2 decimals), each atomically; no file is replaced unless
    every utterance aligned."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    shift_s = (10.0 if frame_shift_ms is None else float(frame_shift_ms)) / 1000.0
    names = ("ali", "units.ctm", "words.ctm")
    summary = AlignSummary(files=[str(out / n) for n in names])
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / names[0]) as ali, atomic_write(out / names[1]) as uctm, \
            atomic_write(out / names[2]) as wctm:
        for r in results:
            ali.write(f"{r.utt} {' '.join(r.labels)}\n")
            uctm.writelines(_ctm(r.utt, r.units, shift_s))
            wctm.writelines(_ctm(r.utt, r.words, shift_s))
            summary.utterances += 1
            summary.frames += r.frames
            summary.units += len(r.units)
            summary.words += len(r.words)
            summary.sil_frames += r.labels.count(SIL)
            summary.score += r.score
    return summary
