"""Signal-level augmentation of speech: speed perturbation, additive noise at
a given SNR, room reverberation, a telephone channel.

Every function takes and returns a mono ``(T,)`` float32 numpy array;
randomness comes in as a :class:`numpy.random.Generator`, so a caller that
seeds it gets the same output every time. The DSP is torchaudio's
(``speed``, ``add_noise``, ``fftconvolve``, ``resample``, ``highpass_biquad``,
``mu_law_encoding``) and libsndfile's GSM 6.10 codec (through soundfile);
only the simulated room impulse response and pink noise are written here.

    >>> y = speed(x, 16000, 1.1)                       # len(y) ~ len(x) / 1.1
    >>> y = add_noise(x, fit_length(n, len(x), rng), snr_db=10.0)
    >>> y = reverberate(x, simulate_rir(16000, rt60=0.5, drr_db=3.0, rng=rng))
    >>> y = telephone(x, 16000, codec="gsm")           # 300-3400 Hz, 8 kHz GSM, back at 16 kHz
"""
from __future__ import annotations

import io

import numpy as np

from asrkit.errors import AudioError, UsageError

#: the telephone channel's pass band (Hz) and rate
TELEPHONE_BAND = (300.0, 3400.0)
TELEPHONE_RATE = 8000
#: ``telephone(codec=...)``: mu-law (G.711, torchaudio), GSM 6.10 full rate (libsndfile), or the band only
CODECS = ("mulaw", "gsm", "none")

# librosa's "kaiser_best" resampling filter: a sharp cut at the band edge
_KAISER_BETA = 14.769656459379492
_KAISER_WIDTH = 64


def _t(x: np.ndarray):
    import torch

    a = np.ascontiguousarray(x, dtype=np.float32)
    return torch.from_numpy(a if a.flags.writeable else a.copy())  # decoded audio can be a read-only buffer


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples."""
    if len(y) >= n:
        return np.ascontiguousarray(y[:n], dtype=np.float32)
    return np.concatenate([y, np.zeros(n - len(y), np.float32)]).astype(np.float32)


# ------------------------------------------------------------------ speed
def speed(x: np.ndarray, rate: int, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times as fast, pitch moving with it (sox's
    ``speed``, as Kaldi's speed perturbation): ``(T,)`` -> ``(~T / factor,)``.
    torchaudio's ``functional.speed`` (a windowed-sinc resampling from
    ``rate * factor`` to ``rate``)."""
    if factor <= 0:
        raise UsageError(f"speed factor must be > 0, got {factor:g}")
    if factor == 1.0:
        return np.asarray(x, np.float32)
    import torchaudio.functional as AF

    y, _ = AF.speed(_t(x), rate, float(factor))
    return y.numpy().astype(np.float32, copy=False)


# ------------------------------------------------------------------ noise
def energy(x: np.ndarray) -> float:
    """Sum of squares (float64)."""
    x = np.asarray(x, np.float64)
    return float(np.dot(x, x))


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """``10 log10(|signal|^2 / |noise|^2)`` (dB)."""
    return 10.0 * np.log10(energy(signal) / energy(noise))


def fit_length(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``noise`` from a random offset, looping it when it
    is shorter than ``n``."""
    noise = np.asarray(noise, np.float32)
    if len(noise) == 0:
        raise AudioError("noise of zero length")
    start = int(rng.integers(len(noise)))
    reps = -(-(start + n) // len(noise))
    return np.tile(noise, reps)[start:start + n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + a * noise`` with ``a`` set so that the energy ratio of ``x`` to
    ``a * noise`` is ``snr_db`` (torchaudio's ``functional.add_noise``).
    ``noise`` has ``len(x)`` samples (see :func:`fit_length`). Silence (or
    silent noise) is returned unchanged."""
    if len(noise) != len(x):
        raise ValueError(f"noise has {len(noise)} samples, the signal {len(x)}")
    if energy(x) == 0.0 or energy(noise) == 0.0:
        return np.asarray(x, np.float32)
    import torch
    import torchaudio.functional as AF

    y = AF.add_noise(_t(x)[None], _t(noise)[None], torch.tensor([float(snr_db)]))
    return y[0].numpy()


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of Gaussian white noise (unit variance)."""
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f power) noise, unit variance: white noise
    shaped in the frequency domain (amplitude 1/sqrt(f), DC removed)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    sd = y.std()
    return (y / sd if sd > 0 else y).astype(np.float32)


def babble(talkers: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Babble noise: ``n`` samples of each talker (random offset, looped),
    each scaled to unit power, summed. ``talkers``: other utterances'
    samples at the target rate."""
    out = np.zeros(n, np.float64)
    for t in talkers:
        s = fit_length(t, n, rng).astype(np.float64)
        p = float(np.dot(s, s)) / n
        if p > 0:
            out += s / np.sqrt(p)
    return out.astype(np.float32)


# ------------------------------------------------------------- reverberation
def simulate_rir(rate: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: a direct-path impulse (amplitude
    1) followed by Gaussian noise under an exponential envelope that falls
    60 dB in ``rt60`` seconds (Sabine's diffuse tail), scaled so that the
    direct-to-reverberant energy ratio is ``drr_db``. ``(round(rt60 * rate) + 1,)``."""
    if rt60 <= 0:
        raise UsageError(f"RT60 must be > 0 seconds, got {rt60:g}")
    n = max(int(round(rt60 * rate)), 2)
    t = np.arange(1, n + 1, dtype=np.float64) / rate
    tail = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # amplitude 1e-3 at rt60
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / float(np.dot(tail, tail)))
    return np.concatenate([[1.0], tail]).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` (torchaudio's ``functional.fftconvolve``),
    shifted so that the RIR's direct path (its largest tap) lines up with
    the dry signal, cut to ``len(x)`` and scaled to the power of ``x`` (as
    Kaldi's ``wav-reverberate --normalize-output``)."""
    import torchaudio.functional as AF

    rir = np.asarray(rir, np.float32)
    if len(rir) == 0 or not np.any(rir):
        raise AudioError("room impulse response is empty or all zeros")
    shift = int(np.argmax(np.abs(rir)))
    y = AF.fftconvolve(_t(x), _t(rir)).numpy()[shift:shift + len(x)]
    y = _fit(y, len(x))
    ey = energy(y)
    return (y * np.sqrt(energy(x) / ey)).astype(np.float32) if ey > 0 else y


# ------------------------------------------------------------------ telephone
def gsm_available() -> bool:
    """True when this libsndfile has the GSM 6.10 codec."""
    import soundfile as sf

    return "GSM610" in sf.available_subtypes("WAV")


def _gsm_roundtrip(y8: np.ndarray) -> np.ndarray:
    """Encode 8 kHz samples with GSM 6.10 full rate and decode them again
    (libsndfile, in memory)."""
    import soundfile as sf

    if not gsm_available():
        raise UsageError("--telephone gsm: this libsndfile has no GSM 6.10 codec; use --telephone mulaw")
    buf = io.BytesIO()
    sf.write(buf, np.clip(y8, -1.0, 1.0), TELEPHONE_RATE, format="WAV", subtype="GSM610")
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32")
    return _fit(z, len(y8))


def telephone(x: np.ndarray, rate: int, codec: str = "mulaw") -> np.ndarray:
    """A narrow-band telephone channel, returned at ``rate`` with ``len(x)``
    samples: low-pass at 3400 Hz while resampling to 8 kHz (torchaudio's
    Kaiser-windowed sinc resampler with its cut-off at 3400 Hz), high-pass
    at 300 Hz (two torchaudio ``highpass_biquad`` stages), the ``codec``
    (``mulaw``: 8-bit G.711 mu-law; ``gsm``: GSM 6.10 full rate; ``none``),
    then back to ``rate``."""
    import torchaudio.functional as AF

    if codec not in CODECS:
        raise UsageError(f"unknown telephone codec '{codec}' (use one of {', '.join(CODECS)})")
    lo, hi = TELEPHONE_BAND
    y = _t(x)
    src = rate
    if src <= TELEPHONE_RATE:  # the band edge is cut while going down; come from above 8 kHz
        y, src = AF.resample(y, src, 2 * TELEPHONE_RATE), 2 * TELEPHONE_RATE
    y8 = AF.resample(y, src, TELEPHONE_RATE, lowpass_filter_width=_KAISER_WIDTH, rolloff=hi / (TELEPHONE_RATE / 2),
                     resampling_method="sinc_interp_kaiser", beta=_KAISER_BETA)
    for _ in range(2):
        y8 = AF.highpass_biquad(y8, TELEPHONE_RATE, lo)
    if codec == "mulaw":
        y8 = AF.mu_law_decoding(AF.mu_law_encoding(y8.clamp(-1.0, 1.0), 256), 256)
    elif codec == "gsm":
        y8 = _t(_gsm_roundtrip(y8.numpy()))
    if rate != TELEPHONE_RATE:  # the same sharp filter keeps the 8 kHz spectrum's images out
        y = AF.resample(y8, TELEPHONE_RATE, rate, lowpass_filter_width=_KAISER_WIDTH, rolloff=hi / (TELEPHONE_RATE / 2),
                        resampling_method="sinc_interp_kaiser", beta=_KAISER_BETA)
    else:
        y = y8
    return _fit(y.numpy(), len(x))
