"""Decoding results and the writers of the hypothesis formats.

A :class:`Hypothesis` is one utterance's result: its output tokens (words
for char/bpe models, phones for phone models), the model units they came
from, a log score and frame counts. Writers turn hypotheses into lines:

- ``text``: Kaldi text, ``utt-id tok tok ...`` (what ``asrkit score`` reads);
- ``trn``: sclite trn, ``tok tok ... (utt-id)`` (utt-ids already start with
  the speaker, so this is sclite's ``(spk-utt)``);
- ``jsonl``: one JSON object per line, ``{"utt", "hyp", "score", "frames",
  "out_frames", "units"}`` plus any ``extra`` fields (``am_score``, ``nbest``),
  and ``times`` (``[[start, end], ...]`` seconds per token) when known;
- ``ctm``: one line per token, ``utt-id 1 start dur token`` (seconds, two
  decimals, as Kaldi's ``utils/convert_ctm.pl`` input and sclite's ctm with
  the utterance as the "file"); needs token times
  (:attr:`Hypothesis.token_frames`, :mod:`asrkit.decode.timing`).

Writers are looked up by name in :data:`WRITERS`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, TextIO

__all__ = ["Hypothesis", "WRITERS", "FORMATS", "ctm_line", "format_line", "write_hypotheses"]


@dataclass
class Hypothesis:
    """One decoded utterance.

    Attributes:
        utt: utterance id.
        tokens: output tokens (words, or phones for a phone model).
        score: log score of the hypothesis (greedy: summed log probability of
            the best class of every output frame).
        frames: input (feature) frames.
        out_frames: model output frames (``frames`` / subsampling).
        units: the model's unit sequence before conversion to words (for
            phone models the same as ``tokens``).
        extra: more JSON-serializable fields for the jsonl writer.
        token_frames: ``(start, end)`` model output frames of each token (end
            exclusive), when the decoder worked them out (``--format ctm``).
        frame_seconds: seconds per model output frame (frame shift x subsampling).
    """

    utt: str
    tokens: list[str]
    score: float
    frames: int
    out_frames: int
    units: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    token_frames: Optional[list[tuple[int, int]]] = None
    frame_seconds: Optional[float] = None

    @property
    def text(self) -> str:
        return " ".join(self.tokens)

    def times(self) -> list[tuple[float, float]]:
        """``(start, end)`` seconds of each token; ValueError when unknown."""
        if self.token_frames is None or self.frame_seconds is None:
            raise ValueError(f"utterance {self.utt}: no token times (decode with times=True)")
        return [(s * self.frame_seconds, e * self.frame_seconds) for s, e in self.token_frames]

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "utt": self.utt,
            "hyp": self.text,
            "score": round(float(self.score), 4),
            "frames": int(self.frames),
            "out_frames": int(self.out_frames),
            "units": list(self.units),
        }
        obj.update(self.extra)
        if self.token_frames is not None and self.frame_seconds is not None:
            obj["times"] = [[round(s, 3), round(e, 3)] for s, e in self.times()]
        return obj


def _text_line(h: Hypothesis) -> str:
    return f"{h.utt} {h.text}".rstrip() + "\n"


def _trn_line(h: Hypothesis) -> str:
    return (f"{h.text} ({h.utt})" if h.tokens else f"({h.utt})") + "\n"


def _jsonl_line(h: Hypothesis) -> str:
    return json.dumps(h.to_json(), ensure_ascii=False) + "\n"


def ctm_line(utt: str, start: float, end: float, token: str, channel: str = "1") -> str:
    """One CTM line: ``utt channel start dur token`` (seconds, 2 decimals)."""
    return f"{utt} {channel} {start:.2f} {max(0.0, end - start):.2f} {token}\n"


def _ctm_lines(h: Hypothesis) -> str:
    return "".join(ctm_line(h.utt, s, e, tok) for tok, (s, e) in zip(h.tokens, h.times()))


#: format name -> function turning one hypothesis into its line(s).
WRITERS: dict[str, Callable[[Hypothesis], str]] = {
    "text": _text_line,
    "trn": _trn_line,
    "jsonl": _jsonl_line,
    "ctm": _ctm_lines,
}
FORMATS = tuple(WRITERS)


def format_line(h: Hypothesis, fmt: str = "text") -> str:
    """The line(s) of ``h`` in format ``fmt`` (with the trailing newline)."""
    try:
        return WRITERS[fmt](h)
    except KeyError:
        raise ValueError(f"unknown hypothesis format {fmt!r}; expected one of {FORMATS}") from None


def write_hypotheses(hyps: Iterable[Hypothesis], out: TextIO, fmt: str = "text", flush: bool = True,
                     clock=None) -> int:
    """Write ``hyps`` to ``out`` in ``fmt``, flushing after each one when
    ``flush`` (so a pipe sees results as they come); returns the count.
    ``clock``: a :class:`~asrkit.decode.stopwatch.Stopwatch` that gets the
    seconds spent formatting and writing (``output``)."""
    import time

    if fmt not in WRITERS:
        raise ValueError(f"unknown hypothesis format {fmt!r}; expected one of {FORMATS}")
    line = WRITERS[fmt]
    n = 0
    for h in hyps:
        t = time.perf_counter()
        out.write(line(h))
        if flush:
            out.flush()
        if clock is not None:
            clock.add("output", time.perf_counter() - t)
        n += 1
    return n
