"""Speaker perturbation of log-mel features on the fly: vocal tract length
perturbation (VTLP, Jaitly & Hinton 2013) and time stretching.

    >>> geom = MelGeometry.from_conf(store.conf)                  # the store's fbank config
    >>> p = Perturb(geom, warp=(0.9, 1.1), rate=(0.9, 1.1))
    >>> out = p(raw_feats, seed=(0, epoch, index))               # (T, D) -> (T', D), a new tensor

**VTLP.** Per call a warp factor ``alpha ~ U[warp]`` is drawn and the mel-bin
axis is resampled with Kaldi's VTLN warp (``torchaudio.compliance.kaldi.
vtln_warp_freq``: linear with slope ``1/alpha`` between the cutoffs
``vtlp_low`` and ``vtlp_high``, and straight lines from there to ``low_freq``
and to ``high_freq`` at the ends, so the band edges stay put). Output bin
``k`` reads the input at the warped frequency of its centre, ``W(f_k)``, as
Kaldi's ``--vtln-warp`` places the filter of bin ``k`` at ``W(f_k)``; the value
there is linearly interpolated between the two neighbouring bins' centres
(in mel). ``alpha = 1`` is the identity, and the mapping is monotone, so bins
keep their order. An energy column (``use_energy``) is left as it is; with
deltas, each block (static, delta, delta-delta) is warped alike.

**Time stretch.** A rate ``r ~ U[rate]`` gives ``T' = round(T / r)`` frames
(``r > 1``: faster, fewer frames), each linearly interpolated between the two
nearest input frames, first and last frame kept (speed perturbation done on
features, without changing the pitch).

Both are pure functions of the ``seed`` given per call (the trainer passes
``(seed, epoch, utterance index)``; the draws are made from
``seed_of(("perturb", seed...))``, apart from SpecAugment's), so an epoch is
the same on resume, with data-loader workers and under DDP. They work on the
raw log-mel features, before CMVN (the warp does not commute with a per-bin
normalization), and carry no gradient (the trainer calls them on data).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from asrkit.errors import ConfigError
from asrkit.features.specaugment import seed_of

__all__ = ["MelGeometry", "Perturb", "time_stretch", "vtlp", "vtlp_positions", "vtlp_warp"]


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def _mel_inv(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (torch.exp(m / 1127.0) - 1.0)


@dataclass(frozen=True)
class MelGeometry:
    """Where the mel bins of a feature matrix are: ``num_bins`` triangles
    evenly spaced in mel between ``low_freq`` and ``high_freq`` (Hz, Kaldi's
    layout), columns ``offset .. offset + num_bins - 1`` of each block of
    ``block`` columns (``blocks``: 1 + deltas); ``vtlp_low`` / ``vtlp_high``:
    the warp's cutoffs in Hz."""

    num_bins: int
    low_freq: float = 20.0
    high_freq: float = 8000.0
    offset: int = 0
    block: int = 0          # 0: num_bins
    blocks: int = 1
    vtlp_low: float = 100.0
    vtlp_high: float = 7500.0

    @property
    def dim(self) -> int:
        return (self.block or self.num_bins) * self.blocks

    @classmethod
    def from_conf(cls, conf: dict[str, Any], vtlp_low: float = 100.0, vtlp_high: float = -500.0,
                  where: str = "the feature store") -> MelGeometry:
        """The geometry of features made with the feature config ``conf`` (a
        feature store's ``conf.yaml``: ``type``, torchaudio's Kaldi fbank
        options, ``deltas``). ``vtlp_high <= 0`` is an offset from the Nyquist
        frequency (Kaldi's convention). ConfigError for other than fbank."""
        from asrkit.features.config import kaldi_options

        kind = conf.get("type")
        if kind != "fbank":
            raise ConfigError(f"{where}: features.vtlp warps log-mel filterbank features, but the features are "
                              f"{kind or 'of an unknown kind (no type in conf.yaml)'}; featurize with an fbank "
                              f"config (conf/fbank80.yaml) or turn features.vtlp off")
        opt = {**kaldi_options("fbank"), **{k: v for k, v in conf.items() if k in kaldi_options("fbank")}}
        nyq = float(opt["sample_frequency"]) / 2
        high = float(opt["high_freq"])
        high = nyq + high if high <= 0 else high
        vh = nyq + vtlp_high if vtlp_high <= 0 else float(vtlp_high)
        low = float(opt["low_freq"])
        n = int(opt["num_mel_bins"])
        if not low < vtlp_low < vh < high:
            raise ConfigError(f"features.vtlp_low / vtlp_high: need low_freq < vtlp_low < vtlp_high < high_freq "
                              f"({low:g} < {vtlp_low:g} < {vh:g} < {high:g} Hz)")
        energy = bool(opt["use_energy"])
        offset = 1 if energy and not opt["htk_compat"] else 0
        return cls(n, low, high, offset, n + int(energy), 1 + int(conf.get("deltas", 0) or 0),
                   float(vtlp_low), vh)

    def centers(self) -> torch.Tensor:
        """Bin centre frequencies (num_bins,) in Hz, float64."""
        lo, hi = _mel(torch.tensor(self.low_freq, dtype=torch.float64)), \
            _mel(torch.tensor(self.high_freq, dtype=torch.float64))
        step = (hi - lo) / (self.num_bins + 1)
        return _mel_inv(lo + step * torch.arange(1, self.num_bins + 1, dtype=torch.float64))


def vtlp_warp(freq: torch.Tensor, alpha: float, geom: MelGeometry) -> torch.Tensor:
    """Kaldi's piecewise-linear VTLN warp of ``freq`` (Hz) by ``alpha``."""
    from torchaudio.compliance.kaldi import vtln_warp_freq

    return vtln_warp_freq(geom.vtlp_low, geom.vtlp_high, geom.low_freq, geom.high_freq, alpha, freq)


def vtlp_positions(alpha: float, geom: MelGeometry) -> torch.Tensor:
    """Fractional input bin (num_bins,) float64 that each output bin reads
    with warp factor ``alpha``: nondecreasing, in ``[0, num_bins - 1]``."""
    c = geom.centers()
    lo, hi = _mel(torch.tensor(geom.low_freq, dtype=torch.float64)), \
        _mel(torch.tensor(geom.high_freq, dtype=torch.float64))
    step = (hi - lo) / (geom.num_bins + 1)
    pos = (_mel(vtlp_warp(c, alpha, geom)) - lo) / step - 1
    pos = torch.where((pos - pos.round()).abs() < 1e-9, pos.round(), pos)   # alpha = 1: exact bins
    return pos.clamp(0, geom.num_bins - 1)


def _interp(x: torch.Tensor, pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional indices ``pos``."""
    n = x.shape[dim]
    i0 = pos.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    w = (pos - i0.to(pos.dtype)).to(x.dtype)
    shape = [1] * x.dim()
    shape[dim] = -1
    w = w.view(shape)
    return x.index_select(dim, i0) * (1 - w) + x.index_select(dim, i1) * w


@torch.no_grad()
def vtlp(feats: torch.Tensor, alpha: float, geom: MelGeometry) -> torch.Tensor:
    """Raw log-mel ``feats (T, D)`` with the mel axis warped by ``alpha`` (each
    block's bins; an energy column kept): a new tensor. The training
    augmentation (:class:`Perturb`) and test-time warping
    (:func:`asrkit.decode.emissions.iter_outputs`' ``warps``) both use it."""
    if feats.dim() != 2 or feats.shape[1] != geom.dim:
        raise ValueError(f"vtlp: want (T, {geom.dim}) features for this mel geometry, got {tuple(feats.shape)}")
    out = feats.clone()
    if alpha == 1.0:
        return out
    pos = vtlp_positions(alpha, geom)
    for b in range(geom.blocks):
        a = b * (geom.block or geom.num_bins) + geom.offset
        out[:, a:a + geom.num_bins] = _interp(feats[:, a:a + geom.num_bins], pos, 1)
    return out


def time_stretch(feats: torch.Tensor, rate: float) -> torch.Tensor:
    """``feats (T, D)`` played ``rate`` times as fast: ``(round(T / rate), D)``
    by linear interpolation between frames (first and last frame kept)."""
    T = feats.shape[0]
    n = max(1, int(round(T / rate)))
    if n == T or T < 2:
        return feats.clone()
    step = (T - 1) / (n - 1) if n > 1 else 0.0
    return _interp(feats, torch.arange(n, dtype=torch.float64) * step, 0)


def _check_range(name: str, r: Sequence[float]) -> tuple[float, float]:
    ok = isinstance(r, (list, tuple)) and len(r) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in r)
    if not ok or not 0 < r[0] <= r[1]:
        raise ConfigError(f"features.{name}: want [low, high] with 0 < low <= high (e.g. [0.9, 1.1]), got {r!r}")
    return float(r[0]), float(r[1])


class Perturb:
    """VTLP (``geom`` and ``warp`` given) and/or time stretching (``rate``
    given) of raw log-mel features; see the module docstring."""

    def __init__(self, geom: MelGeometry | None = None, warp: Sequence[float] | None = None,
                 rate: Sequence[float] | None = None) -> None:
        if (geom is None) != (warp is None):
            raise ValueError("Perturb: VTLP needs both geom and warp")
        self.geom = geom
        self.warp = None if warp is None else _check_range("vtlp_warp", warp)
        self.rate = None if rate is None else _check_range("stretch_rate", rate)

    def draw(self, seed: int | Sequence[int | str]) -> tuple[float, float]:
        """``(alpha, rate)`` for this ``seed`` (1.0 for what is off)."""
        parts = (seed,) if isinstance(seed, int) else tuple(seed)
        g = torch.Generator().manual_seed(seed_of(("perturb", *parts)))
        u = torch.rand(2, generator=g, dtype=torch.float64).tolist()
        alpha = 1.0 if self.warp is None else self.warp[0] + (self.warp[1] - self.warp[0]) * u[0]
        rate = 1.0 if self.rate is None else self.rate[0] + (self.rate[1] - self.rate[0]) * u[1]
        return alpha, rate

    @torch.no_grad()
    def __call__(self, feats: torch.Tensor, seed: int | Sequence[int | str] = 0) -> torch.Tensor:
        """``feats (T, D)`` -> perturbed copy ``(T', D)``."""
        if feats.dim() != 2:
            raise ValueError(f"Perturb expects (T, D) features, got shape {tuple(feats.shape)}")
        alpha, rate = self.draw(seed)
        out = feats
        if self.geom is not None and alpha != 1.0:
            if feats.shape[1] != self.geom.dim:
                raise ValueError(f"Perturb: {feats.shape[1]}-dim features, but the mel geometry has {self.geom.dim}")
            out = vtlp(feats, alpha, self.geom)
        if self.rate is not None and rate != 1.0:
            out = time_stretch(out, rate)
        return out.clone() if out is feats else out
