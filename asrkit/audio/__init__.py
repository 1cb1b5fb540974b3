"""Reading audio: WAV/FLAC/OGG (soundfile), NIST SPHERE, Kaldi piped
``wav.scp`` entries, and resampling.

    >>> from asrkit.audio import load
    >>> x, rate = load("a.wav", sample_rate=16000)   # (T,) float32 in [-1, 1]
"""
from asrkit.audio.reader import (AudioInfo, Samples, cut, info, is_piped, load, missing_programs, open_samples, read,
                                 resample, run_pipe)

__all__ = ["AudioInfo", "Samples", "open_samples", "cut", "info", "is_piped", "load", "missing_programs", "read", "resample", "run_pipe"]
