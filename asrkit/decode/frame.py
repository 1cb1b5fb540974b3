"""Frame-level predictions of a frame classifier (``asrkit predict frame``).

Every frame gets the label with the highest score. Two output forms:

- text: ``utt-id l1 l2 ...`` (one label per feature frame, like ``ali``);
- csv: the 11-785 Kaggle submission form, a header ``id,label`` then one row
  per frame, ``id`` running from 0 over the frames of all utterances in
  utt-id order (the order of the feature store).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, TextIO

from asrkit.decode.emissions import iter_outputs

__all__ = ["FramePrediction", "predict_frames", "write_frame_text", "write_frame_csv"]


@dataclass
class FramePrediction:
    """Labels of every frame of one utterance."""

    utt: str
    labels: list[str]


def predict_frames(exp, store, *, batch_size: int = 16, utts: Optional[Sequence[str]] = None,
                   on_batch: Optional[Callable[[int], None]] = None) -> Iterator[FramePrediction]:
    """The best label of every frame of every utterance (utt-id order) with the
    frame classifier of a loaded exp dir (:func:`asrkit.decode.exp.load_exp`)."""
    outputs = iter_outputs(exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size,
                           device=exp.device, utts=utts, input_dim=exp.input_dim, on_batch=on_batch)
    never = exp.units.never
    for out in outputs:
        lp = out.log_probs
        if never:
            lp = lp.clone()
            lp[:, never] = float("-inf")  # <blank> is not a frame label
        ids = lp.argmax(-1).tolist()  # (T,)
        yield FramePrediction(out.utt, exp.units.symbols(ids))


def write_frame_text(preds: Iterable[FramePrediction], out: TextIO) -> int:
    """``utt-id l1 l2 ...`` lines; returns the number of utterances."""
    n = 0
    for p in preds:
        out.write(" ".join([p.utt, *p.labels]) + "\n")
        n += 1
    return n


def write_frame_csv(preds: Iterable[FramePrediction], out: TextIO, start: int = 0) -> int:
    """``id,label`` rows with a running frame id from ``start``; returns the
    number of frames written."""
    out.write("id,label\n")
    i = start
    for p in preds:
        out.write("".join(f"{i + k},{lab}\n" for k, lab in enumerate(p.labels)))
        i += len(p.labels)
    return i - start
