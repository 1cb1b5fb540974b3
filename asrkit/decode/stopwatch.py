"""Where the time of one decoding run goes: ``asrkit decode --timing``.

    clock = Stopwatch()
    with clock.phase("model load"):
        exp = load_exp(...)
    for hyp in decode_store(exp, store, clock=clock): ...   # adds "features" and "forward"
    clock.summary(utterances=60, audio_seconds=186.0)

Phases are named sums of seconds; :func:`map_batches <asrkit.decode.emissions.map_batches>`
adds ``features`` (reading, CMVN and padding) and ``forward`` (the model) per batch, the
command adds the rest. ``search`` is what the decoding loop spent besides features, forward
and output (the beam or greedy search; with ``--jobs`` the time waited for the workers).
``start`` is the time from the process's start to the command (the interpreter and the
imports; Linux only, from ``/proc/self/stat``).
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator, Optional

__all__ = ["PHASES", "Stopwatch", "process_seconds"]

#: The phases of a decoding run, in the order they are reported.
PHASES = ("start", "model load", "LM load", "search setup", "features", "forward", "search", "output")


def process_seconds() -> Optional[float]:
    """Seconds since this process started (Linux: its start time in ``/proc/self/stat`` against the
    boot clock, 10 ms steps); None where that is not known."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            stat = f.read()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, after the command name
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Stopwatch:
    """Seconds per named phase of one run (see the module docstring)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t0 = time.perf_counter()
        since_start = process_seconds()
        if since_start is not None:
            self.seconds["start"] = since_start

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + float(seconds)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t)

    def total(self) -> float:
        """Seconds from the process's start (when known, else from this stopwatch's) to now."""
        return self.seconds.get("start", 0.0) + time.perf_counter() - self._t0

    def summary(self, utterances: int, audio_seconds: float) -> str:
        """One line: each phase's seconds, ``other`` (the total's rest: reading the options and the
        feature store's index, ...), the total, utterances per second and the real-time factor (total
        seconds / audio seconds)."""
        total = self.total()
        parts = [f"{p} {self.seconds[p]:.2f} s" for p in PHASES if p in self.seconds]
        parts += [f"{p} {s:.2f} s" for p, s in self.seconds.items() if p not in PHASES]
        parts.append(f"other {max(0.0, total - sum(self.seconds.values())):.2f} s")
        rate = f"{utterances / total:.1f} utt/s" if total > 0 else "- utt/s"
        rtf = f"RTF {total / audio_seconds:.4f}" if audio_seconds > 0 else "RTF -"
        return (f"timing: {', '.join(parts)}, total {total:.2f} s; {utterances} utterances, "
                f"{audio_seconds:.1f} s of audio: {rate}, {rtf}")
