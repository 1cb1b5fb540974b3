"""Kaldi-compatible features through ``torchaudio.compliance.kaldi``, and
Kaldi-style deltas."""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

from asrkit.features.config import FeatureConfig, _kaldi_fn, kaldi_options

_INT16_SCALE = 32768.0


def add_deltas(feats: np.ndarray, order: int, window: int = 2) -> np.ndarray:
    """Append delta (and delta-delta) features like Kaldi's ``add-deltas``.

    ``feats`` (T, D) -> (T, D * (order + 1)); edges replicate the first/last
    frame, as Kaldi does.
    """
    import torchaudio.functional as AF

    if order == 0:
        return feats
    cur = torch.from_numpy(np.ascontiguousarray(feats.T))  # (D, T)
    parts = [cur]
    for _ in range(order):
        cur = AF.compute_deltas(cur, win_length=2 * window + 1, mode="replicate")
        parts.append(cur)
    return torch.cat(parts, dim=0).T.contiguous().numpy()  # (T, D*(order+1))


def compute(wave: np.ndarray | torch.Tensor, conf: FeatureConfig | None = None, *, fast_path: bool = True) -> np.ndarray:
    """Features of one utterance.

    ``wave`` (T,) float in [-1, 1] at ``conf.sample_rate``; it is scaled to
    the int16 range first so values equal Kaldi's ``compute-fbank-feats``.
    Returns ``(frames, conf.dim)`` float32 (0 frames when shorter than one
    window).
    """
    conf = conf or FeatureConfig.load(None)
    t = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)  # (T,)
    fast = _fast_fbank(conf) if fast_path else None
    if fast is not None:
        feats = fast(t).numpy()  # (frames, D)
    else:
        feats = _kaldi_fn(conf.type)(t.reshape(1, -1) * _INT16_SCALE, **conf.options).numpy()  # (frames, D)
    if conf.deltas:
        feats = add_deltas(feats, conf.deltas, conf.delta_window)
    return feats


def num_frames(num_samples: int, conf: FeatureConfig) -> int:
    """Frames Kaldi makes from ``num_samples`` (snip_edges as configured)."""
    rate = conf.sample_rate
    win = int(rate * float(conf.options.get("frame_length", 25.0)) * 0.001)
    shift = int(rate * float(conf.options.get("frame_shift", 10.0)) * 0.001)
    if conf.options.get("snip_edges", True):
        return 0 if num_samples < win else 1 + (num_samples - win) // shift
    return (num_samples + shift // 2) // shift


# --------------------------------------------------------------------------
# A cached fast path for the common fbank configs.
#
# torchaudio.compliance.kaldi.fbank rebuilds the mel filterbank and window on
# every call, computes a log-energy it then drops, takes |X| before squaring
# it, and allocates a fresh array for each of its ~12 steps over all frames of
# the utterance. For the options below we keep the filterbank and window per
# config and compute the same quantities in the same order (same frames, same
# window, same FFT size), CHUNK frames at a time into work buffers that are
# allocated once per thread: the data of one chunk stays in the CPU cache from
# the frames to the mel energies, and nothing is allocated per call but the
# result. The int16 scale (x 32768, exact: a power of two) is folded into the
# window. tests/features check it against torchaudio within 1e-4. Anything
# else falls back to torchaudio.
_FAST_CACHE: dict[tuple, "_FastFbank | None"] = {}  # fbank options -> fast path (None: torchaudio)
_WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")
CHUNK_FRAMES = 512  # frames per pass: ~2.5 MB of work buffers at 25 ms / 512-point FFT


def _window(kind: str, size: int, blackman_coeff: float) -> torch.Tensor:
    """The analysis window (Kaldi ``FeatureWindowFunction``), (size,) float32."""
    if kind == "hanning":
        return torch.hann_window(size, periodic=False)
    if kind == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46)
    if kind == "povey":
        return torch.hann_window(size, periodic=False).pow(0.85)
    if kind == "rectangular":
        return torch.ones(size)
    a = 2 * math.pi / (size - 1)
    n = torch.arange(size, dtype=torch.float32)
    return blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)


class _FastFbank:
    def __init__(self, o: dict):
        import torchaudio.compliance.kaldi as K

        rate = float(o["sample_frequency"])
        self.shift = int(rate * o["frame_shift"] * 0.001)
        self.size = int(rate * o["frame_length"] * 0.001)
        self.nfft = 1 << (self.size - 1).bit_length() if o["round_to_power_of_two"] else self.size
        self.remove_dc = o["remove_dc_offset"]
        self.preemph = float(o["preemphasis_coefficient"])
        # x 32768 here instead of on the samples: scaling by a power of two is exact, so
        # (x * 32768 - mean) * w rounds to the same floats as (x - mean) * (w * 32768)
        self.window = _window(o["window_type"], self.size, o["blackman_coeff"]) * _INT16_SCALE  # (W,)
        self.use_power = o["use_power"]
        self.use_log = o["use_log_fbank"]
        self.min_samples = o["min_duration"] * rate
        mel, _ = K.get_mel_banks(o["num_mel_bins"], self.nfft, rate, o["low_freq"], o["high_freq"],
                                 o["vtln_low"], o["vtln_high"], o["vtln_warp"])  # (M, nfft/2)
        mel = torch.nn.functional.pad(mel.float(), (0, 1))  # (M, nfft/2 + 1)
        self.mel_t = mel.T.contiguous()  # (nfft/2 + 1, M)
        self.eps = torch.finfo(torch.float32).eps
        self.num_mel_bins = o["num_mel_bins"]
        self._local = threading.local()  # work buffers, one set per thread (a library caller may run threads)

    def _views(self, k: int) -> tuple[torch.Tensor, ...]:
        """This thread's work buffers cut to ``k`` frames (made once per ``k``:
        slicing a tensor costs microseconds of Python, with the GIL held)."""
        views = getattr(self._local, "views", None)
        if views is None:
            c, bins = CHUNK_FRAMES, self.nfft // 2 + 1
            self._local.buffers = (
                torch.empty(c, 1),                             # frame means
                torch.empty(c, self.size),                     # frames - mean
                torch.zeros(c, self.nfft),                     # windowed frames; columns >= W stay 0 (FFT padding)
                torch.empty(c, bins, dtype=torch.complex64),   # spectrum
                torch.empty(c, bins),                          # power (or magnitude) spectrum
            )
            views = self._local.views = {}
        v = views.get(k)
        if v is None:
            means, cent, padded, spec, power = self._local.buffers
            cent, win, ri = cent[:k], padded[:k, :self.size], torch.view_as_real(spec[:k])  # ri (k, bins, 2)
            v = views[k] = (means[:k], cent, cent[:, :-1], cent[:, :1], win, win[:, 1:], win[:, :1],
                            padded[:k], spec[:k], ri, ri[..., 0], ri[..., 1], power[:k])
        return v

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        """(T,) samples in [-1, 1] -> (frames, M) fbank of ``wave * 32768``."""
        x = wave.reshape(-1)
        n = x.shape[0]
        if n < self.size or n < self.min_samples:
            return torch.empty(0, self.num_mel_bins)
        m = 1 + (n - self.size) // self.shift
        frames = x.unfold(0, self.size, self.shift)  # (F, W) view, Kaldi's snip_edges frames
        out = torch.empty(m, self.num_mel_bins)
        c = self.preemph
        # near-equal chunks, so none is a single row (a 1-row matmul takes another BLAS path)
        chunks = -(-m // CHUNK_FRAMES)
        for i in range(chunks):
            a, b = i * m // chunks, (i + 1) * m // chunks
            means, cent, cent_prev, cent_first, win, win_next, win_first, padded, spec, ri, re, im, power = \
                self._views(b - a)
            fr = frames[a:b]  # (k, W)
            if self.remove_dc:
                torch.mean(fr, dim=1, keepdim=True, out=means)
                fr, fr_prev, fr_first = torch.sub(fr, means, out=cent), cent_prev, cent_first
            else:
                fr_prev, fr_first = fr[:, :-1], fr[:, :1]
            if c != 0.0:  # x[i] - c * x[i-1], with x[-1] := x[0] (Kaldi)
                torch.mul(fr_prev, c, out=win_next)
                torch.mul(fr_first, c, out=win_first)
                torch.sub(fr, win, out=win)
                win.mul_(self.window)
            else:
                torch.mul(fr, self.window, out=win)
            torch.fft.rfft(padded, out=spec)  # (k, nfft/2 + 1)
            if self.use_power:
                ri.square_()
                torch.add(re, im, out=power)
            else:
                torch.abs(spec, out=power)
            o = torch.mm(power, self.mel_t, out=out[a:b])  # (k, M)
            if self.use_log:
                o.clamp_min_(self.eps).log_()
        return out


def _fast_fbank(conf: FeatureConfig) -> "_FastFbank | None":
    if conf.type != "fbank":
        return None
    try:
        key = tuple(sorted(conf.options.items()))
        f = _FAST_CACHE.get(key, False)
    except TypeError:  # an unhashable option value (not from a YAML config)
        key, f = None, False
    if f is False:
        o = {**kaldi_options("fbank"), **conf.options}
        f = None
        if not (o["dither"] != 0.0 or o["use_energy"] or o["subtract_mean"] or not o["snip_edges"]
                or o["vtln_warp"] != 1.0 or o["window_type"] not in _WINDOWS or o["channel"] not in (-1, 0)):
            f = _FastFbank(o)
        if key is not None:
            _FAST_CACHE[key] = f
    return f


# --------------------------------------------------------------------------
# Long audio in blocks.
#
# With snip_edges each frame is made from its own window of samples only
# (DC removal, pre-emphasis, window, FFT, mel and log all work within the
# frame), so frames a..b of a recording are the features of the samples
# a*shift .. (b-1)*shift + win. Deltas look `deltas * delta_window` frames to
# each side; a block is computed with that much context and cropped.
DEFAULT_BLOCK_FRAMES = 3000  # 30 s at a 10 ms shift: ~10 MB of work arrays per block


def can_stream(conf: FeatureConfig) -> bool:
    """True when features computed block by block equal the whole-file ones:
    snip_edges, no dither (random), no per-utterance mean subtraction."""
    o = {**kaldi_options(conf.type), **conf.options}
    return bool(o["snip_edges"]) and float(o["dither"]) == 0.0 and not o.get("subtract_mean", False)


def frame_geometry(conf: FeatureConfig) -> tuple[int, int]:
    """``(window, shift)`` in samples, as Kaldi computes them."""
    rate = conf.sample_rate
    return (int(rate * float(conf.options.get("frame_length", 25.0)) * 0.001),
            int(rate * float(conf.options.get("frame_shift", 10.0)) * 0.001))


def compute_blocks(num_samples: int, read, conf: FeatureConfig | None = None,
                   block_frames: int = DEFAULT_BLOCK_FRAMES):
    """Features of one utterance, yielded in blocks of at most
    ``block_frames`` frames; concatenated they equal :func:`compute` of the
    whole utterance (to float rounding). ``read(a, b)`` returns samples
    ``a..b`` (float, at ``conf.sample_rate``), so the whole utterance never
    needs to be in memory. Configs that :func:`can_stream` rejects are
    computed in one piece."""
    conf = conf or FeatureConfig.load(None)
    if block_frames < 1:
        raise ValueError("block_frames must be >= 1")
    total = num_frames(num_samples, conf)
    min_samples = float(conf.options.get("min_duration", 0.0)) * conf.sample_rate
    if not can_stream(conf) or total <= block_frames or num_samples < min_samples:
        yield compute(read(0, num_samples), conf)
        return
    win, shift = frame_geometry(conf)
    base = FeatureConfig(conf.type, conf.options, 0, conf.delta_window)
    ctx = conf.deltas * conf.delta_window
    for a in range(0, total, block_frames):
        b = min(a + block_frames, total)
        a0, b0 = max(0, a - ctx), min(total, b + ctx)
        feats = compute(read(a0 * shift, (b0 - 1) * shift + win), base)  # (b0 - a0, D)
        if conf.deltas:
            feats = add_deltas(feats, conf.deltas, conf.delta_window)[a - a0:a - a0 + (b - a)]
        yield feats
