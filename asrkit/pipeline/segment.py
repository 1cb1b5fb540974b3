"""Long recordings cut at pauses into a segmented data dir (``asrkit segment``).

A data dir of whole recordings (``wav.scp`` + ``utt2spk``) becomes one whose
``segments`` file (``utt-id reco-id start end``) names the stretches of speech,
cut where the speaker pauses, so that ``asrkit featurize`` and ``asrkit
decode`` see utterances of a few seconds instead of an hour. Where the speech
is comes from one of two measures, frame by frame (10 ms):

- **energy** (the default; no model): the loudness of a frame is the mean of
  its log-mel filterbank (:func:`asrkit.decode.longform.loudness`), smoothed
  over :data:`SMOOTH_FRAMES`; a frame is speech when it is louder than
  ``floor + threshold * (peak - floor)``, with ``floor`` and ``peak`` the 5th
  and 95th percentiles of the recording's loudness (so the level of the
  recording does not matter);
- **a CTC model's blank posteriors** (``--exp EXP``, as CTC segmentation
  does): a frame is speech when the model emits a unit there (its most likely
  class is not the blank); between two emissions further apart than
  ``min_silence`` the speaker paused.

Then (:func:`speech_spans`): speech stretches closer than ``min_silence`` are
joined, those shorter than ``min_seconds`` (clicks, breaths) left out, those
longer than ``max_seconds`` cut at their quietest points
(:func:`asrkit.decode.longform.pause_cuts`: the lowest loudness, or the most
certain blank), and each is widened by ``padding`` on both sides, never into
its neighbour.

The transcripts of the input (``text``, one per recording) are split between
the segments only with ``--exp``: the model force-aligns each recording's
transcript (:func:`asrkit.decode.align.align_store`), and each word goes to
the segment its middle falls in, or the nearest one (:func:`split_words`);
segments that get no word are left out. With the energy measure there is no
alignment, and ``text`` is dropped.

    spans = speech_spans(speech, quietness, min_silence=30, min_frames=30, max_frames=2000, padding=10)
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from asrkit.errors import DataError, UsageError

__all__ = ["COMMAND", "SMOOTH_FRAMES", "SegmentOptions", "ctc_speech", "energy_speech", "segment_datadir",
           "speech_spans", "split_words"]

COMMAND = "segment"
#: Frames over which the loudness is averaged before the speech threshold (0.1 s at 10 ms).
SMOOTH_FRAMES = 10


@dataclass
class SegmentOptions:
    """``asrkit segment``'s settings (seconds), checked by :meth:`check`."""

    max_seconds: float = 20.0
    min_seconds: float = 0.3
    min_silence: float = 0.3
    padding: float = 0.1
    threshold: float = 0.3

    def check(self) -> "SegmentOptions":
        for name, v in (("--max-seconds", self.max_seconds), ("--min-seconds", self.min_seconds),
                        ("--min-silence", self.min_silence), ("--padding", self.padding),
                        ("--threshold", self.threshold)):
            if not math.isfinite(v) or v < 0:
                raise UsageError(f"{name} must be a number >= 0, got {v:g}")
        if self.max_seconds < 1:
            raise UsageError(f"--max-seconds must be at least 1, got {self.max_seconds:g}")
        if self.min_seconds >= self.max_seconds:
            raise UsageError(f"--min-seconds {self.min_seconds:g} must be below --max-seconds {self.max_seconds:g}")
        if self.min_silence <= 0:
            raise UsageError(f"--min-silence must be > 0 seconds, got {self.min_silence:g}")
        if not self.threshold < 1:
            raise UsageError(f"--threshold must be in 0..1 (a share of the loudness range), got {self.threshold:g}")
        return self


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the runs of True in ``mask (T,)`` (end exclusive)."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def speech_spans(speech: np.ndarray, quietness: np.ndarray, *, min_silence: int, min_frames: int, max_frames: int,
                 padding: int) -> list[tuple[int, int]]:
    """Segments ``[(start, end)]`` (frames, end exclusive, in order, not overlapping) of a recording whose
    frames are speech where ``speech (T,)`` is True; ``quietness (T,)`` is low where a cut of a long
    segment fits best (loudness). See the module docstring for the steps."""
    from asrkit.decode.longform import pause_cuts

    total = int(len(speech))
    joined: list[list[int]] = []
    for a, b in _runs(speech):
        if joined and a - joined[-1][1] < min_silence:
            joined[-1][1] = b
        else:
            joined.append([a, b])
    kept = [(a, b) for a, b in joined if b - a >= max(1, min_frames)]
    pieces: list[tuple[int, int]] = []
    q = torch.as_tensor(np.asarray(quietness, dtype=np.float32))
    for a, b in kept:
        cuts = pause_cuts(q[a:b], max_frames) if b - a > max_frames else []
        edges = [a, *(a + c for c in cuts), b]
        pieces += list(zip(edges[:-1], edges[1:]))
    out = []
    for i, (a, b) in enumerate(pieces):
        lo = 0 if i == 0 else (pieces[i - 1][1] + a + 1) // 2
        hi = total if i == len(pieces) - 1 else (b + pieces[i + 1][0]) // 2
        out.append((max(lo, a - padding), min(hi, b + padding)))
    return out


def energy_speech(loud: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(speech (T,) bool, quietness (T,))`` of a recording's frame loudness (smoothed over
    :data:`SMOOTH_FRAMES`); see the module docstring."""
    x = torch.as_tensor(np.asarray(loud, dtype=np.float32))
    k = min(SMOOTH_FRAMES, max(1, len(x)))
    smooth = torch.nn.functional.avg_pool1d(x.view(1, 1, -1), k, stride=1, padding=k // 2,
                                            count_include_pad=False).view(-1)[:len(x)].numpy()
    floor, peak = np.percentile(smooth, 5), np.percentile(smooth, 95)
    if peak - floor < 1e-3:  # one level throughout: all speech or all silence; call it silence
        return np.zeros(len(smooth), dtype=bool), smooth
    return smooth > floor + threshold * (peak - floor), smooth


def ctc_speech(log_probs: torch.Tensor, blank: int, subsampling: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``(speech, quietness)`` per input frame from a CTC model's ``(T', C)`` log-probabilities: speech
    where a unit is emitted (argmax not blank), quietness the probability of not-blank."""
    emit = (log_probs.argmax(-1) != blank).numpy()                       # (T',)
    not_blank = (1.0 - log_probs[:, blank].exp()).numpy()               # (T',)
    s = max(1, int(subsampling))
    speech = np.repeat(emit, s)[:frames]
    quiet = np.repeat(not_blank, s)[:frames]
    if len(speech) < frames:
        speech = np.pad(speech, (0, frames - len(speech)))
        quiet = np.pad(quiet, (0, frames - len(quiet)))
    return speech, quiet


def split_words(words: list[tuple[str, int, int]], spans: list[tuple[int, int]]) -> list[list[str]]:
    """The words ``(word, start, end)`` (frames, in order) of each segment ``(start, end)`` of ``spans``
    (in order, not overlapping): a word goes to the segment its middle falls in, else the nearest one, so
    no word is lost and their order is kept."""
    out: list[list[str]] = [[] for _ in spans]
    if not spans:
        return out
    for w, a, b in words:
        mid = (a + b) / 2
        dist = [0.0 if s <= mid < e else min(abs(mid - s), abs(mid - e)) for s, e in spans]
        out[min(range(len(spans)), key=lambda i: (dist[i], i))].append(w)
    return out


def segment_datadir(data: str | os.PathLike, out: str | os.PathLike, opts: SegmentOptions, *,
                    exp=None, conf=None, overwrite: bool = False,
                    on_recording: Optional[Callable[[], None]] = None) -> dict:
    """Write the segmented data dir ``out`` of ``data`` (see the module docstring); ``exp``: a loaded CTC
    exp dir (:func:`asrkit.decode.exp.load_exp`) whose blank posteriors find the speech, with ``conf`` the
    feature config it was trained on. Returns counts: ``recordings``, ``segments``, ``seconds`` (of
    speech), ``empty`` (recordings without speech), ``text`` (``None``: ``data`` had none, ``"dropped"`` or
    ``"split"``) and ``no_words`` (segments left out because the alignment put no word in them)."""
    import tempfile

    from asrkit.audio import open_samples
    from asrkit.data import DataDir
    from asrkit.data.datadir import Segment
    from asrkit.decode.longform import loudness
    from asrkit.features import FeatureConfig
    from asrkit.features.compute import compute_blocks, frame_geometry
    from asrkit.io import check_output_dir

    opts.check()
    data, out = Path(data), Path(out)
    d = DataDir.load(data)
    if not d.wav_scp:
        raise DataError(f"{data}: no wav.scp; segment needs recordings")
    if d.segments is not None:
        raise DataError(f"{data}: already has a segments file; segment takes whole recordings (wav.scp + utt2spk)")
    missing = [u for u in d.utt_ids if u not in d.wav_scp]
    if missing:
        raise DataError(f"{data}/wav.scp: no line for utterance '{missing[0]}' (it is in utt2spk)")
    check_output_dir(out, COMMAND, overwrite, inputs=(data,))
    conf = conf or FeatureConfig.load(None)
    _, shift_samples = frame_geometry(conf)
    shift = shift_samples / conf.sample_rate  # seconds per frame
    frames_of = lambda s: max(1, int(round(s / shift)))  # noqa: E731
    kw = dict(min_silence=frames_of(opts.min_silence), min_frames=int(round(opts.min_seconds / shift)),
              max_frames=frames_of(opts.max_seconds), padding=int(round(opts.padding / shift)))
    recos = d.utt_ids
    spans: dict[str, tuple[list[tuple[int, int]], float]] = {}
    aligned: Optional[dict[str, list[tuple[str, int, int]]]] = None
    if exp is None:
        for reco in recos:
            src = d.wav_scp[reco]
            with open_samples(src, conf.sample_rate) as x:
                loud = [loudness(torch.from_numpy(np.ascontiguousarray(b))).numpy()
                        for b in compute_blocks(len(x), x.read, conf)]
                seconds = len(x) / x.rate
            loud_all = np.concatenate(loud) if loud else np.zeros(0, np.float32)
            speech, quiet = energy_speech(loud_all, opts.threshold)
            spans[reco] = (speech_spans(speech, quiet, **kw), seconds)
            if on_recording is not None:
                on_recording()
    else:
        from asrkit.data import FeatureStore
        from asrkit.decode.emissions import iter_outputs
        from asrkit.decode.longform import chunk_frames
        from asrkit.pipeline.transcribe import AudioInput, featurize_inputs

        with tempfile.TemporaryDirectory(prefix="asrkit-segment-") as tmp:
            inputs = [AudioInput(r, d.wav_scp[r], d.wav_scp[r]) for r in recos]
            featurize_inputs(inputs, conf, Path(tmp) / "feats")
            store = FeatureStore(Path(tmp) / "feats")
            secs = {u: store.num_frames(u) * shift for u in store.keys()}
            for o in iter_outputs(exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, device=exp.device,
                                  input_dim=exp.input_dim, max_frames=chunk_frames(None, store)):
                speech, quiet = ctc_speech(o.log_probs, int(exp.units.blank_id or 0), exp.subsampling, o.frames)
                spans[o.utt] = (speech_spans(speech, quiet, **kw), secs[o.utt])
                if on_recording is not None:
                    on_recording()
            if d.text is not None:  # the words of each recording in time: its transcript force-aligned
                from asrkit.data.table import write_table
                from asrkit.decode.align import align_store

                write_table(Path(tmp) / "text", {r: d.text.get(r, "") for r in recos})
                aligned = {a.utt: a.words for a in align_store(exp, store, text=Path(tmp) / "text")}
    segments: dict[str, Segment] = {}
    utt2spk: dict[str, str] = {}
    durs: dict[str, float] = {}
    text: Optional[dict[str, str]] = None if aligned is None else {}
    empty = no_words = 0
    for reco in recos:
        found, seconds = spans[reco]
        empty += not found
        words = split_words(aligned[reco], found) if aligned is not None else [[] for _ in found]
        for (a, b), ws in zip(found, words):
            start, end = round(a * shift, 2), round(min(b * shift, seconds), 2)
            if end <= start:
                continue
            if text is not None and not ws:
                no_words += 1
                continue
            utt = f"{reco}-{int(round(start * 100)):07d}-{int(round(end * 100)):07d}"
            segments[utt] = Segment(reco, start, end)
            utt2spk[utt] = d.utt2spk[reco]
            durs[utt] = round(end - start, 2)
            if text is not None:
                text[utt] = " ".join(ws)
    if not segments:
        raise DataError(f"{data}: no speech found in {len(recos)} recording(s); lower --threshold or "
                        f"--min-seconds")
    used = {s.reco for s in segments.values()}
    new = DataDir(wav_scp={r: v for r, v in d.wav_scp.items() if r in used}, utt2spk=utt2spk, segments=segments,
                  utt2dur=durs, text=text)
    new.save_output(out, COMMAND, overwrite, inputs=(data,))
    return {"recordings": len(recos), "segments": len(segments), "seconds": round(sum(durs.values()), 2),
            "empty": empty, "text": None if d.text is None else ("split" if text is not None else "dropped"),
            "no_words": no_words}
