"""SpecAugment (Park et al. 2019): frequency and time masks on a feature matrix.

    >>> aug = SpecAugment(freq_masks=2, freq_width=15, time_masks=2, time_width=40)
    >>> out = aug(feats, seed=(0, epoch, index))      # feats (T, D) tensor; a new tensor

Each frequency mask zeroes ``f ~ U[0, freq_width]`` consecutive bins starting
at ``f0 ~ U[0, D - f]``; each time mask zeroes ``t ~ U[0, min(time_width,
time_ratio * T)]`` consecutive frames. Features are CMVN-normalized before
augmentation, so zero is the mean. The masks are a pure function of the
``seed`` given per call (the trainer passes ``(seed, epoch, utterance index)``),
so an augmented epoch is the same on resume, with data-loader workers, and
under DDP as in a single process.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["SpecAugment", "seed_of"]


def seed_of(parts: Sequence[int | str]) -> int:
    """A 63-bit seed from a tuple (stable across processes and Python runs)."""
    h = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


@dataclass
class SpecAugment:
    """Time and frequency masking; see the module docstring."""

    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width: int = 40
    time_ratio: float = 0.05

    def __call__(self, feats: torch.Tensor, seed: int | Sequence[int | str] = 0) -> torch.Tensor:
        """``feats (T, D)`` -> masked copy ``(T, D)``."""
        if feats.dim() != 2:
            raise ValueError(f"SpecAugment expects (T, D) features, got shape {tuple(feats.shape)}")
        T, D = feats.shape
        s = seed if isinstance(seed, int) else seed_of(seed)
        g = torch.Generator().manual_seed(s)
        out = feats.clone()

        def randint(high: int) -> int:  # uniform in [0, high]
            return int(torch.randint(0, high + 1, (1,), generator=g)) if high > 0 else 0

        for _ in range(self.freq_masks):
            f = randint(min(self.freq_width, D))
            f0 = randint(D - f)
            out[:, f0:f0 + f] = 0
        tmax = min(self.time_width, int(self.time_ratio * T))
        for _ in range(self.time_masks):
            t = randint(tmax)
            t0 = randint(T - t)
            out[t0:t0 + t, :] = 0
        return out
