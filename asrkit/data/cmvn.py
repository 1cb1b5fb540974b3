"""CMVN statistics: count, sum and sum of squares per dimension, kept
globally and per speaker while features are written, applied on read."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CmvnStats:
    """Accumulated statistics of ``dim``-dimensional frames (float64)."""

    count: float
    sum: np.ndarray  # (D,)
    sumsq: np.ndarray  # (D,)

    @classmethod
    def zeros(cls, dim: int) -> "CmvnStats":
        return cls(0.0, np.zeros(dim), np.zeros(dim))

    def add(self, feats: np.ndarray) -> None:
        """Accumulate frames ``feats`` (T, D)."""
        f = feats.astype(np.float64, copy=False)
        self.count += f.shape[0]
        self.sum += f.sum(axis=0)
        self.sumsq += np.einsum("td,td->d", f, f)

    def merge(self, other: "CmvnStats") -> None:
        self.count += other.count
        self.sum += other.sum
        self.sumsq += other.sumsq

    @property
    def mean(self) -> np.ndarray:
        return self.sum / max(self.count, 1.0)

    @property
    def std(self) -> np.ndarray:
        var = self.sumsq / max(self.count, 1.0) - self.mean ** 2
        return np.sqrt(np.maximum(var, 1e-10))

    def apply(self, feats: np.ndarray, norm_vars: bool = True) -> np.ndarray:
        """(T, D) -> normalized (T, D) float32."""
        out = feats - self.mean.astype(np.float32)
        if norm_vars:
            out = out / self.std.astype(np.float32)
        return out.astype(np.float32, copy=False)

    def to_kaldi(self) -> np.ndarray:
        """Kaldi's ``compute-cmvn-stats`` matrix: (2, D+1), row 0 sums and
        count, row 1 sums of squares and 0."""
        d = self.sum.shape[0]
        m = np.zeros((2, d + 1))
        m[0, :d], m[0, d] = self.sum, self.count
        m[1, :d] = self.sumsq
        return m

    @classmethod
    def from_kaldi(cls, m: np.ndarray) -> "CmvnStats":
        d = m.shape[1] - 1
        return cls(float(m[0, d]), m[0, :d].astype(np.float64), m[1, :d].astype(np.float64))


def utterance_cmvn(feats: np.ndarray, norm_vars: bool = True) -> np.ndarray:
    """Normalize one utterance by its own statistics."""
    s = CmvnStats.zeros(feats.shape[1])
    s.add(feats)
    return s.apply(feats, norm_vars)
