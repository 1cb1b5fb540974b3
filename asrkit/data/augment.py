"""``asrkit data augment``: an augmented copy of a data dir.

Each utterance of the input is read, changed by the signal functions of
:mod:`asrkit.audio.augment` and written as a 16-bit WAV (or FLAC) under ``OUT/wav/``;
the tables follow with new ids. Ids take a prefix per version, on the
utterance, the speaker and (for written audio) the recording, so speaker ids
still prefix utterance ids (Kaldi's ``perturb_data_dir_speed.sh`` and
``reverberate_data_dir.py`` do the same):

- speed factor ``f`` != 1: ``spF-`` (``sp0.9-spk1-utt1``);
- the other augmentations: their tags and the copy number,
  ``rev-noise-tel1-`` when they are chained (every copy gets all of them, in
  the order reverberation, noise, telephone), ``rev1-`` / ``noise1-`` /
  ``tel1-`` with ``each`` (a copy per augmentation); a speed-perturbed copy
  has both (``sp1.1-rev-noise2-spk1-utt1``).

Every random choice (noise file and offset, SNR, RIR, RT60, codec, babble
talkers) comes from a generator seeded with ``(seed, new utterance id)``: the
same seed gives the same audio whatever the order or ``jobs``.

The output is built in a temporary folder next to ``OUT`` and renamed into
place at the end, so an interrupted or failed run leaves no half-made data
dir.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asrkit import log
from asrkit.data.datadir import DataDir, Segment
from asrkit.errors import AudioError, DataError, InputError, OutputError, UsageError, quote

COMMAND = "data augment"
#: ``--noise`` values that generate noise instead of naming files
GENERATED_NOISE = ("white", "pink", "babble")
#: audio file endings a noise or RIR folder is searched for
AUDIO_ENDINGS = (".wav", ".flac", ".ogg", ".sph", ".wv1", ".wv2", ".au", ".aiff", ".aif")
#: how the new audio is written: ``--format`` -> soundfile format (16-bit PCM)
AUDIO_FORMATS = {"wav": "WAV", "flac": "FLAC"}
_TAGS = {"rir": "rev", "noise": "noise", "telephone": "tel"}
_CACHE_BYTES = 256 << 20  # decoded noise / RIR / babble audio kept in memory


@dataclass
class AugmentOptions:
    """What to do to each utterance (see the module docstring for the ids)."""

    speeds: tuple[float, ...] = (1.0,)
    noise: tuple[str, ...] = ()               # folders / lists / data dirs of noise, or white | pink | babble
    snr: tuple[float, float] = (5.0, 20.0)     # dB, drawn uniformly per utterance
    babble_talkers: tuple[int, int] = (3, 7)   # other utterances summed into babble
    rir: str | None = None                     # "simulate", or a folder / list / data dir of RIR audio
    rt60: tuple[float, float] = (0.2, 0.8)     # seconds, simulated RIRs
    drr: tuple[float, float] = (0.0, 10.0)     # dB, direct-to-reverberant ratio of simulated RIRs
    telephone: tuple[str, ...] = ()            # codecs drawn from per utterance (mulaw, gsm, none)
    copies: int = 1
    each: bool = False                         # a copy per augmentation instead of all of them chained
    keep_original: bool = False
    seed: int = 0
    jobs: int = 1
    audio_format: str = "wav"                  # wav | flac (16-bit either way)

    def check(self) -> None:
        """:class:`UsageError` for values that cannot work."""
        from asrkit.audio.augment import CODECS, gsm_available

        if not self.speeds:
            raise UsageError("--speed: give at least one factor")
        for f in self.speeds:
            if not f > 0:
                raise UsageError(f"--speed: a factor must be > 0, got {f:g}")
        if len(set(self.speeds)) != len(self.speeds):
            raise UsageError("--speed: a factor is given twice")
        _check_range("--snr", self.snr, lowest=None)
        _check_range("--rt60", self.rt60, lowest=0.0, strict=True)
        _check_range("--drr", self.drr, lowest=None)
        lo, hi = self.babble_talkers
        if not 1 <= lo <= hi:
            raise UsageError(f"--babble-talkers: want 1 <= LO <= HI, got {lo},{hi}")
        for c in self.telephone:
            if c not in CODECS:
                raise UsageError(f"--telephone: unknown codec '{c}' (use one or more of {', '.join(CODECS)})")
        if "gsm" in self.telephone and not gsm_available():
            raise UsageError("--telephone gsm: this libsndfile has no GSM 6.10 codec; use --telephone mulaw")
        if self.copies < 1:
            raise UsageError(f"--copies must be >= 1, got {self.copies}")
        if self.audio_format not in AUDIO_FORMATS:
            raise UsageError(f"--format: want one of {', '.join(AUDIO_FORMATS)}, got '{self.audio_format}'")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be >= 1, got {self.jobs}")
        if len(self.noise) != len(set(self.noise)):
            raise UsageError("--noise: the same source is given twice")
        if not self.kinds() and all(f == 1.0 for f in self.speeds):
            raise UsageError("nothing to do: give --speed with a factor other than 1, --noise, --rir or --telephone")

    def kinds(self) -> list[str]:
        """The augmentations asked for besides speed, in the order they are applied."""
        return [k for k, on in (("rir", self.rir), ("noise", self.noise), ("telephone", self.telephone)) if on]


def _check_range(name: str, r: tuple[float, float], lowest: float | None, strict: bool = False) -> None:
    lo, hi = r
    if not np.isfinite([lo, hi]).all() or lo > hi:
        raise UsageError(f"{name}: want LO,HI with LO <= HI, got {lo:g},{hi:g}")
    if lowest is not None and (lo <= lowest if strict else lo < lowest):
        raise UsageError(f"{name}: values must be > {lowest:g}, got {lo:g}")


@dataclass(frozen=True)
class Version:
    """One version of every utterance: its id prefix, speed factor and the
    augmentations applied after the speed change (empty: none)."""

    prefix: str
    speed: float
    kinds: tuple[str, ...]

    @property
    def is_original(self) -> bool:
        return self.speed == 1.0 and not self.kinds


def plan_versions(opts: AugmentOptions) -> list[Version]:
    """The versions ``opts`` asks for, the original first when it is kept."""
    kinds = opts.kinds()
    groups = ([tuple(kinds)] if not opts.each else [(k,) for k in kinds]) if kinds else []
    noise_tag = opts.noise[0] if len(opts.noise) == 1 and opts.noise[0] in GENERATED_NOISE else "noise"
    tags = dict(_TAGS, noise=noise_tag)
    out: list[Version] = [Version("", 1.0, ())] if opts.keep_original else []
    for f in opts.speeds:
        sp = "" if f == 1.0 else f"sp{f:g}-"
        if not groups:
            if not (f == 1.0 and opts.keep_original):
                out.append(Version(sp, f, ()))
            continue
        for g in groups:
            for c in range(1, opts.copies + 1):
                out.append(Version(f"{sp}{'-'.join(tags[k] for k in g)}{c}-", f, g))
    return out


# ------------------------------------------------------------------ sources
def read_sources(spec: str, what: str) -> list[str]:
    """Audio sources named by ``spec``: a data dir (its ``wav.scp``), a
    folder (its audio files, searched recursively, sorted), or a list file
    (a path per line, or ``id source`` lines as in ``wav.scp``). Missing
    files and an empty list raise :class:`InputError` naming ``spec``."""
    from asrkit.audio import is_piped
    from asrkit.io import iter_lines

    p = Path(spec)
    if p.is_dir():
        if (p / "wav.scp").is_file():
            from asrkit.data.table import read_table

            sources = list(read_table(p / "wav.scp", allow_empty_value=False).values())
        else:
            sources = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_ENDINGS)
            if not sources:
                raise InputError(f"{what} {spec}: no audio files in the folder ({', '.join(AUDIO_ENDINGS)})")
    elif p.exists():
        sources = []
        for lineno, line in iter_lines(p):
            parts = line.split(None, 1)
            src = parts[-1]
            if not is_piped(src) and not os.path.isfile(src):
                raise InputError(f"{what} {spec}:{lineno}: no such audio file {quote(src)}")
            sources.append(src)
    else:
        raise InputError(f"{what} {spec}: no such file or folder")
    if not sources:
        raise InputError(f"{what} {spec}: the list is empty")
    return sources


class _AudioCache:
    """Decoded mono audio by ``(source, rate)``, least recently used dropped
    past a byte budget; thread-safe."""

    def __init__(self, budget: int = _CACHE_BYTES):
        self._d: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes, self._budget = 0, budget
        self._lock = threading.Lock()

    def get(self, source: str, rate: int, what: str) -> np.ndarray:
        key = (source, rate)
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        from asrkit.audio import load

        try:
            x, _ = load(source, rate)
        except AudioError as e:
            raise AudioError(f"{what}: {e}") from None
        with self._lock:
            self._d[key] = x
            self._bytes += x.nbytes
            while self._bytes > self._budget and len(self._d) > 1:
                _, old = self._d.popitem(last=False)
                self._bytes -= old.nbytes
        return x


# ------------------------------------------------------------------ the work
def _rng(seed: int, utt: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(utt.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, h])


@dataclass
class _Context:
    d: DataDir
    opts: AugmentOptions
    noise_sources: dict[str, list[str]] = field(default_factory=dict)  # spec -> sources (files only)
    rir_sources: list[str] = field(default_factory=list)
    talkers: dict[str, list[str]] = field(default_factory=dict)         # utt -> babble candidates
    cache: _AudioCache = field(default_factory=_AudioCache)
    clipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read_utt(self, utt: str, rate: int | None = None) -> tuple[np.ndarray, int]:
        try:
            return self.d.audio(utt, rate)
        except AudioError as e:
            raise AudioError(f"utterance {quote(utt)}: {e}") from None

    def talker_audio(self, utt: str, rate: int) -> np.ndarray:
        src, start, _ = self.d.source(utt)
        if start is None:
            return self.cache.get(src, rate, f"babble talker {quote(utt)}")
        return self.read_utt(utt, rate)[0]


def _noise(ctx: _Context, utt: str, x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    from asrkit.audio import augment as A

    o = ctx.opts
    spec = o.noise[int(rng.integers(len(o.noise)))]
    snr = float(rng.uniform(*o.snr))
    n = len(x)
    if spec == "white":
        noise = A.white_noise(n, rng)
    elif spec == "pink":
        noise = A.pink_noise(n, rng)
    elif spec == "babble":
        pool = ctx.talkers[utt]
        k = min(int(rng.integers(o.babble_talkers[0], o.babble_talkers[1] + 1)), len(pool))
        chosen = rng.choice(len(pool), size=k, replace=False)
        noise = A.babble([ctx.talker_audio(pool[i], rate) for i in sorted(chosen)], n, rng)
    else:
        sources = ctx.noise_sources[spec]
        src = sources[int(rng.integers(len(sources)))]
        noise = A.fit_length(ctx.cache.get(src, rate, f"--noise {spec}"), n, rng)
    return A.add_noise(x, noise, snr)


def _reverb(ctx: _Context, x: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    from asrkit.audio import augment as A

    o = ctx.opts
    if o.rir == "simulate":
        rir = A.simulate_rir(rate, float(rng.uniform(*o.rt60)), float(rng.uniform(*o.drr)), rng)
    else:
        src = ctx.rir_sources[int(rng.integers(len(ctx.rir_sources)))]
        rir = ctx.cache.get(src, rate, f"--rir {o.rir}")
    return A.reverberate(x, rir)


def _make(ctx: _Context, utt: str, v: Version, wav_dir: Path) -> tuple[str, float]:
    """Write version ``v`` of ``utt``; returns (new id, seconds)."""
    import soundfile as sf

    from asrkit.audio import augment as A

    new = v.prefix + utt
    rng = _rng(ctx.opts.seed, new)
    x, rate = ctx.read_utt(utt)
    x = A.speed(x, rate, v.speed)
    for kind in v.kinds:
        if kind == "rir":
            x = _reverb(ctx, x, rate, rng)
        elif kind == "noise":
            x = _noise(ctx, utt, x, rate, rng)
        else:
            codecs = ctx.opts.telephone
            x = A.telephone(x, rate, codecs[int(rng.integers(len(codecs)))])
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0.99:  # scale, don't clip: the SNR and the spectrum stay as made
        x = x * np.float32(0.99 / peak)
        with ctx.lock:
            ctx.clipped += 1
    if len(x) == 0:
        raise DataError(f"utterance {quote(utt)}: {v.prefix.rstrip('-')} left no samples")
    ext = ctx.opts.audio_format
    # 16-bit by rounding to the nearest step here (libsndfile's own float -> WAV conversion floors,
    # its FLAC one rounds: the two formats would differ by one step)
    pcm = np.clip(np.round(x.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(wav_dir / f"{new}.{ext}", pcm, rate, format=AUDIO_FORMATS[ext], subtype="PCM_16")
    return new, len(x) / rate


def _safe_id(utt: str) -> None:
    if "/" in utt or utt.startswith(".") or "\0" in utt:
        raise DataError(f"utterance id {quote(utt)} cannot name a file (has '/' or starts with '.')")


def augment_dir(src: str | os.PathLike, out: str | os.PathLike, opts: AugmentOptions,
                overwrite: bool = False) -> DataDir:
    """Write the augmented data dir ``out`` from the data dir ``src``.

    ``out`` follows :func:`asrkit.io.check_output_dir` (a non-empty folder
    another command made needs ``overwrite``), checked before any work and
    again before the rename. Bad options raise :class:`UsageError`; a
    missing or unreadable audio, noise or RIR file :class:`InputError`
    (:class:`AudioError`) naming it. Returns the new dir (its ``path`` is ``out``).
    """
    from asrkit.io import check_output_dir, write_marker

    opts.check()
    src, out = Path(src), Path(out)
    extra_inputs = tuple(Path(s) for s in (*opts.noise, opts.rir or "")
                         if s and s not in GENERATED_NOISE and s != "simulate" and Path(s).is_dir())
    check_output_dir(out, COMMAND, overwrite, inputs=(src, *extra_inputs))
    d = DataDir.load(src)
    if not d.wav_scp:
        raise InputError(f"{src}: no wav.scp, nothing to augment (a feature-only data dir?)")
    if len(d) == 0:
        raise InputError(f"{src}: no utterances")
    _check_sources_outside(d, src, out)
    versions = plan_versions(opts)
    ctx = _Context(d, opts)
    for spec in opts.noise:
        if spec not in GENERATED_NOISE:
            ctx.noise_sources[spec] = read_sources(spec, "--noise")
    if opts.rir is not None and opts.rir != "simulate":
        ctx.rir_sources = read_sources(opts.rir, "--rir")
    if "babble" in opts.noise:
        ctx.talkers = _babble_pools(d)
    made = [(u, v) for v in versions if not v.is_original for u in d.utt_ids]
    for u in d.utt_ids:
        _safe_id(u)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".augment.tmp", dir=out.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes 0700; OUT gets the usual mode
        wav_dir = tmp / "wav"
        wav_dir.mkdir()
        durs = _run(ctx, made, wav_dir, opts.jobs)
        new = _tables(d, versions, durs, out.resolve() / "wav", opts.audio_format)
        new.save(tmp)
        write_marker(tmp, COMMAND)
        if ctx.clipped:
            log.info(f"{ctx.clipped} utterance(s) scaled down to keep their peak below 0.99 (no clipping)")
        # the rule again (another run may have written OUT meanwhile); what it allows is replaced:
        # the old folder is moved aside, the new one renamed in, then the old one removed
        check_output_dir(out, COMMAND, overwrite, inputs=(src, *extra_inputs))
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "dir")
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:
                os.replace(old / "dir", out)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        from asrkit.io import os_error_line

        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(os_error_line(out, e)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    new.path = out
    return new


def _check_sources_outside(d: DataDir, src: Path, out: Path) -> None:
    """Refuse an ``out`` that holds audio of ``src``: replacing it would
    delete audio the input (and kept originals) still need."""
    from asrkit.audio import is_piped

    real = out.resolve()
    for reco, source in d.wav_scp.items():
        if not is_piped(source):
            p = Path(source).resolve()
            if p == real or real in p.parents:
                raise UsageError(f"{out}: holds audio of {src} ({quote(reco)}: {source}); write to another folder")


def _babble_pools(d: DataDir) -> dict[str, list[str]]:
    """Per utterance, the utterances babble may take talkers from: those of
    other speakers (or, with one speaker, the other utterances)."""
    ids = d.utt_ids
    if len(ids) < 2:
        raise DataError("--noise babble needs a data dir of at least 2 utterances (babble is made of the others)")
    by_spk = d.spk2utt
    pools = {}
    for u in ids:
        others = [w for w in ids if d.utt2spk[w] != d.utt2spk[u]]
        pools[u] = others or [w for w in by_spk[d.utt2spk[u]] if w != u]
    return pools


def _run(ctx: _Context, made: list[tuple[str, Version]], wav_dir: Path, jobs: int) -> dict[str, float]:
    """Make every (utterance, version) pair; new id -> seconds."""
    from concurrent.futures import ThreadPoolExecutor

    durs: dict[str, float] = {}
    if not made:
        return durs
    with log.progress() as bar:
        task = bar.add_task("augment", total=len(made))
        if jobs == 1:
            for u, v in made:
                new, sec = _make(ctx, u, v, wav_dir)
                durs[new] = sec
                bar.advance(task)
            return durs
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_make, ctx, u, v, wav_dir) for u, v in made]
            try:
                for fut in futures:
                    new, sec = fut.result()
                    durs[new] = sec
                    bar.advance(task)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return durs


def _tables(d: DataDir, versions: list[Version], durs: dict[str, float], wav_dir: Path, ext: str) -> DataDir:
    """The new dir's tables: the kept originals as they were, every other
    version with prefixed ids and its own recording."""
    keep_ali = all(v.speed == 1.0 for v in versions)
    if not keep_ali and (d.ali is not None or any(n.startswith("ali") for n in d.extra)):
        log.info("frame labels (ali) dropped: a speed change makes them wrong")
    new = DataDir(text=None if d.text is None else {}, segments=None if d.segments is None else {},
                  ali=None if d.ali is None or not keep_ali else {}, utt2dur={},
                  extra={n: {} for n in d.extra if keep_ali or not n.startswith("ali")})
    for v in versions:
        for u in d.utt_ids:
            nu = v.prefix + u
            if nu in new.utt2spk:
                raise DataError(f"utterance id {quote(nu)} would be made twice (the input already has it); "
                                f"augment a dir without such ids")
            new.utt2spk[nu] = v.prefix + d.utt2spk[u]
            if d.text is not None:
                new.text[nu] = d.text[u]
            if new.ali is not None:
                new.ali[nu] = d.ali[u]
            for name, t in new.extra.items():
                t[nu] = d.extra[name][u]
            if v.is_original:
                src, _, _ = d.source(u)
                reco = d.segments[u].reco if d.segments is not None else u
                new.wav_scp[reco] = src
                if d.segments is not None:
                    new.segments[nu] = d.segments[u]
                new.utt2dur[nu] = d.duration(u)
            else:
                if nu in new.wav_scp:
                    raise DataError(f"recording id {quote(nu)} would be made twice (the input already has it)")
                new.wav_scp[nu] = str(wav_dir / f"{nu}.{ext}")
                if new.segments is not None:
                    new.segments[nu] = Segment(nu, 0.0, durs[nu])
                new.utt2dur[nu] = durs[nu]
    return new
