"""A real-speech test set from the Asterisk PBX prompts (``asrkit corpus asterisk``).

Source: the Debian packages ``asterisk-core-sounds-en-wav`` (the prompts, one
female speaker, "Allison", 8 kHz 16-bit WAV telephone speech) and
``asterisk-core-sounds-en`` (the transcript file ``core-sounds-en.txt.gz``),
CC-BY-SA-3.0. They are fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` into a cache folder, or read from a folder the user unpacked
them into (``--from DIR``).

Rules:

- a transcript line is ``name: text`` (``;`` starts a comment); ``name`` is
  the prompt's path without ``.wav`` below the sounds folder (``digits/7``);
- annotations in ``[...]``, ``(...)`` and ``<...>`` are removed; a prompt left
  with no words (tones, beeps, silence, sound effects) is dropped as non-speech,
  and so are prompts without audio or without a transcript;
- transcripts are normalized by :func:`asrkit.corpora.textnorm.normalize`
  (lowercase words; digits and ordinals to words; ``*`` -> star, ``#`` ->
  pound; punctuation removed) with ``digit_strings``: the prompts read the
  numbers a caller dials digit by digit (``dial 500`` is spoken ``dial five
  zero zero``, ``extension 1234`` ``extension one two three four``);
- utt-id = ``allison-`` + name with ``/`` replaced by ``-``; speaker ``allison``;
- split: sort the utt-ids (C locale); ``test`` = positions 0, 5, 10, ...;
  ``train`` = the rest. Audio stays 8 kHz; ``asrkit featurize`` resamples.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from asrkit import log
from asrkit.corpora.textnorm import normalize
from asrkit.data.table import sorted_keys, write_table
from asrkit.errors import AsrkitError, DataError, InputError

__all__ = ["PACKAGES", "AsteriskResult", "build_asterisk", "clean_transcript", "default_cache", "fetch_packages"]

PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
TRANSCRIPT_NAMES = ("core-sounds-en.txt.gz", "core-sounds-en.txt")
SPEAKER = "allison"


@dataclass
class AsteriskResult:
    """What :func:`build_asterisk` wrote."""

    out: Path
    train: int
    test: int
    seconds: float
    sample_rate: int
    dropped_nonspeech: list[str] = field(default_factory=list)
    missing_audio: list[str] = field(default_factory=list)
    missing_transcript: list[str] = field(default_factory=list)


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/asrkit/asterisk`` (``~/.cache/asrkit/asterisk``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "asrkit" / "asterisk"


def fetch_problem() -> str | None:
    """Why ``apt-get download`` cannot fetch the packages here (no apt/dpkg-deb,
    or apt does not know them), or None when it should work (the tests of the
    real packages skip with this reason)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "apt-get/dpkg-deb not available (not a Debian system)"
    p = subprocess.run(["apt-cache", "show", PACKAGES[0]], capture_output=True, text=True)
    if p.returncode != 0:
        return f"apt does not know {PACKAGES[0]} (no package lists; run apt-get update)"
    return None


def fetch_packages(cache: str | os.PathLike) -> Path:
    """Download and unpack the two Debian packages into ``cache/root``
    (reused when already there); returns the unpacked root."""
    cache = Path(cache)
    root = cache / "root"
    if (root / ".complete").exists():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise AsrkitError(
                f"{tool} not found: on a non-Debian system download {' and '.join(PACKAGES)} (.deb), "
                f"unpack them with 'dpkg-deb -x' or 'ar x' + tar into a folder and pass --from FOLDER"
            )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as tmp:
        log.info(f"fetching {' '.join(PACKAGES)} with apt-get download")
        proc = subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or len(debs) < len(PACKAGES):
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise AsrkitError(
                f"apt-get download {' '.join(PACKAGES)} failed ({last[-1] if last else 'no .deb files'}); "
                f"run 'apt-get update' first, or unpack the packages yourself and pass --from FOLDER"
            )
        staging = Path(tmp) / "root"
        for deb in debs:
            proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise AsrkitError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")
        (staging / ".complete").write_text("\n".join(d.name for d in debs) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    return root


def _find_transcript(root: Path) -> Path:
    for name in TRANSCRIPT_NAMES:
        if (root / name).is_file():
            return root / name
        found = sorted(root.rglob(name))
        if found:
            return found[0]
    raise InputError(
        f"{root}: no {TRANSCRIPT_NAMES[0]} found (it comes in the Debian package asterisk-core-sounds-en; "
        f"unpack it there with 'dpkg-deb -x')"
    )


def _find_sounds(root: Path) -> Path:
    """The folder that holds the prompts: ``usr/share/asterisk/sounds/<voice>``
    (or ``.../sounds/en``), or ``root`` itself when it holds .wav files."""
    candidates = sorted(p for p in root.rglob("*") if p.is_dir() and p.parent.name == "sounds")
    for cand in [root, *candidates]:
        if any(cand.glob("*.wav")):
            return cand
    raise InputError(
        f"{root}: no prompt .wav files found (they come in the Debian package asterisk-core-sounds-en-wav; "
        f"unpack it there with 'dpkg-deb -x')"
    )


def _read_transcripts(path: Path) -> dict[str, str]:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = raw.decode("utf-8", errors="replace")
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        name, sep, words = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            log.warn(f"{path.name}:{lineno}: not a 'name: text' line, skipped")
            continue
        name = name.strip()
        if name in out:
            log.warn(f"{path.name}:{lineno}: second transcript for '{name}', first one kept")
            continue
        out[name] = words.strip()
    return out


def clean_transcript(text: str) -> str:
    """Drop ``[...]``, ``(...)``, ``<...>`` annotations, then normalize to
    lowercase words, numbers of 3+ digits read digit by digit (empty: not
    speech)."""
    for _ in range(3):  # nested brackets
        text = re.sub(r"\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>", " ", text)
    return normalize(text, digit_strings=True)


def build_asterisk(out: str | os.PathLike, source: str | os.PathLike | None = None,
                   cache: str | os.PathLike | None = None) -> AsteriskResult:
    """Write ``out/train`` and ``out/test`` data dirs from the Asterisk prompts.

    ``source`` is a folder where the packages were unpacked; without it they
    are fetched into ``cache`` (default :func:`default_cache`).
    """
    root = Path(source) if source is not None else fetch_packages(cache or default_cache())
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    root = root.absolute()
    transcripts = _read_transcripts(_find_transcript(root))
    sounds = _find_sounds(root)
    audio = {str(p.relative_to(sounds).with_suffix("")): p for p in sounds.rglob("*.wav")}

    result = AsteriskResult(out=Path(out).absolute(), train=0, test=0, seconds=0.0, sample_rate=0)
    wav: dict[str, str] = {}
    text: dict[str, str] = {}
    dur: dict[str, float] = {}
    rates: set[int] = set()
    for name in sorted(transcripts):
        words = clean_transcript(transcripts[name])
        if not words:
            result.dropped_nonspeech.append(name)
            continue
        if name not in audio:
            result.missing_audio.append(name)
            continue
        utt = f"{SPEAKER}-{name.replace('/', '-')}"
        if utt in wav:
            raise DataError(f"two prompts map to the utt-id '{utt}'")
        try:
            info = sf.info(str(audio[name]))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise InputError(f"{audio[name]}: cannot open audio: {e}") from None
        wav[utt] = str(audio[name])
        text[utt] = words
        dur[utt] = info.frames / info.samplerate
        rates.add(info.samplerate)
    result.missing_transcript = sorted(n for n in audio if n not in transcripts)
    if not wav:
        raise DataError(f"{root}: no prompt has both audio and a spoken transcript")

    utts = sorted_keys(wav)
    splits = {"test": utts[0::5], "train": [u for i, u in enumerate(utts) if i % 5 != 0]}
    for split, ids in splits.items():
        d = result.out / split
        d.mkdir(parents=True, exist_ok=True)
        write_table(d / "wav.scp", {u: wav[u] for u in ids})
        write_table(d / "text", {u: text[u] for u in ids})
        write_table(d / "utt2spk", {u: SPEAKER for u in ids})
        write_table(d / "spk2utt", {SPEAKER: ids} if ids else {})
        write_table(d / "utt2dur", {u: f"{dur[u]:.4f}" for u in ids})
    result.train, result.test = len(splits["train"]), len(splits["test"])
    result.seconds = sum(dur.values())
    result.sample_rate = max(rates)
    return result
