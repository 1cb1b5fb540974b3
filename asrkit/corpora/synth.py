"""Synthesized corpora with exact phone alignments (``asrkit corpus synth``).

Each sentence of a text file becomes one utterance spoken by one of the
Debian speech synthesizers' voices (``flite``: kal, kal16, awb, rms, slt;
``festival``: kal_diphone, ked_diphone, rab_diphone, cmu_us_slt_arctic_hts; ``espeak-ng``:
its English voices and their variants, ``en-us``, ``en-us+f3``, ...;
``espeak-ng`` + ``mbrola``: mb-us1, mb-us2, mb-us3, mb-en1). The synthesizer
reports where each phone ends; those end times give one phone label per 10 ms
frame (``ali``), so the labels are exact by construction.

How each synthesizer reports its phones: flite prints each segment's end
(``-psdur``), festival its Segment relation; espeak-ng's formant voices are run
through libespeak-ng (``espeak_events.py``), whose wave generator emits a
phoneme event at the sample where each phoneme's synthesis starts; for the
MBROLA voices espeak-ng writes the MBROLA input (``--pho``: every phone with its
duration in ms) and ``mbrola`` renders exactly those durations. espeak-ng
starts speaking at once, so its utterances get :data:`LEAD_SILENCE` of
silence in front (and formant voices the same at the end).

Frame rule (default fbank conf: 25 ms window, 10 ms shift, ``snip_edges=True``;
at 16 kHz 400 and 160 samples, at 8 kHz 200 and 80)::

    frames = 1 + (num_samples - win) // shift   if num_samples >= win else 0

Frame ``i`` covers samples ``[shift i, shift i + win)``; its label is the phone
whose time span contains the frame's centre ``(shift i + win / 2) / rate`` =
``0.010 i + 0.0125`` s (``sil`` after the last phone). The corpus is written at
``SynthOptions.sample_rate`` (16 kHz, or 8 kHz for telephone recipes) and the
labels follow the frames of that rate, so they match ``asrkit featurize`` with a
conf of the same ``sample_frequency``.

Phones are ARPAbet without stress, 39 phones plus ``sil``, lowercase
(:data:`ARPABET39`); :data:`PHONE_MAP` folds the flite/festival radio/CMU phone
sets onto it, :data:`ESPEAK_PHONES` espeak-ng's phoneme mnemonics and
:data:`MBROLA_PHONES` the MBROLA voices' SAMPA.

Speaker variety: a speaker is a voice plus a variant (``slt-v1``); each variant
has its own base speaking rate and pitch drawn from the ranges, and each
utterance jitters around its variant's base (rate x U(0.96, 1.04), pitch +-0.5
semitone, clipped to the ranges). Rate uses the synthesizer's own duration
control (``duration_stretch`` / ``Duration_Stretch``), pitch its own F0 control
(flite ``f0_shift``, festival ``int_lr_params``) where the voice has one;
espeak-ng's rate is its words-per-minute (175 x rate, within 80..450) and its
pitch its pitch parameter (50 + 50/12 per semitone: the base pitch scales by
2^((p - 50) / 50)), for the MBROLA voices too (espeak-ng writes their pitch and
durations);
otherwise sox's ``tempo``/``pitch`` effects do it and phone times are scaled by
the tempo factor (then labels follow the audio to within sox's WSOLA splicing:
speech onset/offset stay within about 16 ms of the scaled times). Optional
white noise at ``noise_snr`` dB relative to the speech power. All random draws
come from the seed and the sentence index, so ``--jobs`` does not change the
result.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from asrkit import log
from asrkit.corpora.textnorm import normalize
from asrkit.data.lexicon import ARPABET39
from asrkit.data.table import sorted_keys, write_table
from asrkit.errors import AsrkitError, AudioError, InputError, UsageError
from asrkit.io import atomic_write, iter_lines

__all__ = [
    "ARPABET39",
    "ESPEAK_PHONES",
    "ESPEAK_VARIANTS",
    "LEAD_SILENCE",
    "MBROLA_PHONES",
    "MBROLA_VOICES",
    "PHONE_MAP",
    "SAMPLE_RATE",
    "VOICES",
    "SynthOptions",
    "SynthResult",
    "VoiceInfo",
    "check_voices",
    "frame_geometry",
    "frame_labels",
    "map_phone",
    "num_frames",
    "speaker_voice",
    "synth_corpus",
    "synthesize",
]

SAMPLE_RATE = 16000  # the default output rate
FRAME_LENGTH = 400  # samples: 25 ms at 16 kHz
FRAME_SHIFT = 160  # samples: 10 ms at 16 kHz
LEAD_SILENCE = 0.15  # s of silence put before (and after) espeak-ng's speech


#: Synthesizer phone -> ARPAbet-39 (no stress) or ``sil``. The 39 phones map to
#: themselves; the rest fold as TIMIT-to-CMU mappings usually do.
PHONE_MAP: dict[str, str] = {p: p for p in ARPABET39}
PHONE_MAP.update(
    {
        "pau": "sil", "h#": "sil", "brth": "sil", "ssil": "sil", "sil": "sil", "#": "sil",
        "ax": "ah", "ah0": "ah", "axr": "er", "ix": "ih", "ux": "uw", "dx": "d", "nx": "n",
        "el": "l", "em": "m", "en": "n", "eng": "ng", "hv": "hh", "q": "t", "axh": "ah",
    }
)

#: espeak-ng phoneme mnemonic (its English phoneme tables: en-us, en, en-gb-*,
#: en-029) -> ARPAbet-39/``sil``; case matters. ``None``: no phone of its own
#: (``;``, espeak's linking glide between two vowels, joins the phone before it).
#: A pair ``(first, second, share)`` is one espeak phoneme that ARPAbet spells with
#: two phones (an r-coloured vowel: ``A@`` = aa r); the first gets ``share`` of
#: its time, as espeak-ng's own MBROLA tables split it (phsource/mbrola/us). When
#: the next phoneme is an r already (``e@ r``), the vowel keeps its whole span.
ESPEAK_PHONES: dict[str, str | tuple[str, str, float] | None] = {
    # pauses
    "_": "sil", "_:": "sil", "_!": "sil", "_|": "sil", "_^_": "sil", ";": None, "g-": None,
    # vowels
    "a": "ae", "aa": "ae", "a#": "ah", "A:": "aa", "0": "aa", "O": "ao", "O:": "ao", "O2": "ao",
    "V": "ah", "@": "ah", "@2": "ah", "@5": "ah", "@/": "ah", "@-": "ah", "3": "er", "3:": "er",
    "IR": "er", "VR": "er", "E": "eh", "I": "ih", "I2": "ih", "I#": "ih", "i": "iy", "i:": "iy",
    "U": "uh", "u:": "uw", "eI": "ey", "aI": "ay", "aI2": "ay", "OI": "oy", "aU": "aw", "oU": "ow",
    "@U": "ow", "i@": "ih",
    "e@": ("eh", "r", 0.5), "A@": ("aa", "r", 0.5), "O@": ("ao", "r", 0.5), "o@": ("ao", "r", 0.5),
    "U@": ("uh", "r", 0.5), "i@3": ("ih", "r", 0.6), "aI@": ("ay", "er", 0.6), "aI3": ("ay", "er", 0.6),
    "aU@": ("aw", "er", 0.75),
    # consonants
    "p": "p", "b": "b", "t": "t", "t#": "t", "t2": "t", "t[": "t", "?": "t", "d": "d", "d#": "d", "d[": "d",
    "k": "k", "g": "g", "x": "k", "f": "f", "v": "v", "T": "th", "D": "dh", "s": "s", "z": "z",
    "S": "sh", "Z": "zh", "h": "hh", "tS": "ch", "dZ": "jh", "m": "m", "n": "n", "n-": "n", "N": "ng",
    "l": "l", "l/": "l", "l/2": "l", "@L": "l", "r": "r", "r-": "r", "r/": "r", "w": "w", "w/": "w",
    "w#": "w", "j": "y",
}

#: MBROLA voice phone (SAMPA of us1/us2/us3 and en1, as espeak-ng's ``--pho``
#: writes them) -> ARPAbet-39/``sil``; case matters.
MBROLA_PHONES: dict[str, str] = {
    "_": "sil",
    "p": "p", "p_h": "p", "t": "t", "t_h": "t", "4": "t", "k": "k", "k_h": "k", "b": "b", "d": "d",
    "g": "g", "f": "f", "v": "v", "T": "th", "D": "dh", "s": "s", "z": "z", "S": "sh", "Z": "zh",
    "h": "hh", "tS": "ch", "dZ": "jh", "m": "m", "n": "n", "N": "ng", "l": "l", "l=": "l", "5": "l",
    "r": "r", "r=": "er", "w": "w", "j": "y",
    "i": "iy", "i:": "iy", "I": "ih", "E": "eh", "e": "eh", "{": "ae", "A": "aa", "A:": "aa", "Q": "aa",
    "O": "ao", "O2": "ao", "O:": "ao", "V": "ah", "@": "ah", "3:": "er", "U": "uh", "u": "uw", "u:": "uw",
    "EI": "ey", "eI": "ey", "AI": "ay", "aI": "ay", "OI": "oy", "aU": "aw", "@U": "ow",
    "I@": "ih", "e@": "eh", "U@": "uh",
}

#: festival's ``mrpa`` phone set (British voices: rab_diphone, don_diphone) ->
#: ARPAbet-39/``sil``; these voices are non-rhotic, so the centring diphthongs
#: (``e@`` in "air") are the vowel alone, as the audio has no r.
MRPA_PHONES: dict[str, str] = {
    "#": "sil", "pau": "sil",
    "uh": "ah", "e": "eh", "a": "ae", "o": "aa", "i": "ih", "u": "uh", "ii": "iy", "uu": "uw",
    "oo": "ao", "aa": "aa", "@@": "er", "@": "ah", "ai": "ay", "ei": "ey", "oi": "oy", "au": "aw",
    "ou": "ow", "e@": "eh", "i@": "ih", "u@": "uh",
    "p": "p", "t": "t", "k": "k", "b": "b", "d": "d", "g": "g", "s": "s", "z": "z", "sh": "sh",
    "zh": "zh", "f": "f", "v": "v", "th": "th", "dh": "dh", "ch": "ch", "jh": "jh", "h": "hh",
    "m": "m", "n": "n", "ng": "ng", "l": "l", "r": "r", "w": "w", "y": "y",
}

#: Phones a MBROLA database lacks most diphones of, renamed before it renders
#: (us3 has few diphones with espeak-ng's O2: MBROLA would put silence there).
MBROLA_RENAME: dict[str, dict[str, str]] = {"us3": {"O2": "O"}}


def map_phone(phone: str, engine: str = "flite") -> str:
    """Map a synthesizer phone to ARPAbet-39/``sil``. flite/festival: stress
    digits are dropped, case does not matter; ``mbrola``: :data:`MBROLA_PHONES`;
    ``mrpa`` (festival's British voices): :data:`MRPA_PHONES`."""
    if engine == "mbrola":
        found = MBROLA_PHONES.get(phone)
        table = "MBROLA_PHONES"
    elif engine == "mrpa":
        found = MRPA_PHONES.get(phone.lower())
        table = "MRPA_PHONES"
    else:
        found = PHONE_MAP.get(phone.lower().rstrip("012"))
        table = "PHONE_MAP"
    if found is None:
        raise AsrkitError(f"synthesizer produced the unknown phone '{phone}'; add it to {table}")
    return found


def frame_geometry(sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """``(window, shift)`` in samples of the default fbank conf (25 ms / 10 ms)
    at ``sample_rate``, rounded as ``asrkit featurize`` rounds them."""
    return int(sample_rate * 25.0 * 0.001), int(sample_rate * 10.0 * 0.001)


def num_frames(num_samples: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames the default fbank conf (25 ms / 10 ms, snip_edges) gives at ``sample_rate``."""
    win, shift = frame_geometry(sample_rate)
    if num_samples < win:
        return 0
    return 1 + (num_samples - win) // shift


def frame_labels(segments: Sequence[tuple[str, float]], num_samples: int, sample_rate: int = SAMPLE_RATE) -> list[str]:
    """One label per frame from ``(phone, end_seconds)`` segments in time order.

    Frame ``i`` gets the phone whose span contains its centre
    ``(shift i + win / 2) / sample_rate``; frames after the last end get ``sil``.
    """
    win, shift = frame_geometry(sample_rate)
    labels: list[str] = []
    ends = [end for _, end in segments]
    j = 0
    for i in range(num_frames(num_samples, sample_rate)):
        centre = (i * shift + win / 2) / sample_rate
        while j < len(ends) and ends[j] <= centre:
            j += 1
        labels.append(segments[j][0] if j < len(segments) else "sil")
    return labels


# --------------------------------------------------------------------------
# Voices


@dataclass(frozen=True)
class VoiceInfo:
    """A synthesizer voice and what it can do natively."""

    name: str
    engine: str  # "flite" | "festival" | "espeak-ng" | "mbrola" (espeak-ng + mbrola)
    package: str  # Debian package(s) that provide it
    sample_rate: int
    native_rate: bool
    native_pitch: bool
    description: str


#: The MBROLA voices espeak-ng drives whose phone sets :data:`MBROLA_PHONES` maps
#: (their Debian packages are in the contrib and non-free sections).
MBROLA_VOICES = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")

#: espeak-ng variants that make plain (not whispered, croaking or robotic)
#: voices, for the docs and for a many-voice default; any installed variant works.
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3")

VOICES: dict[str, VoiceInfo] = {
    v.name: v
    for v in (
        VoiceInfo("kal", "flite", "flite", 8000, True, True, "US English male (Kevin), diphone, 8 kHz"),
        VoiceInfo("kal16", "flite", "flite", 16000, True, True, "US English male (Kevin), diphone"),
        VoiceInfo("awb", "flite", "flite", 16000, True, True, "Scottish English male (Alan Black), clustergen"),
        VoiceInfo("rms", "flite", "flite", 16000, True, False, "US English male (Richard Stallman), clustergen"),
        VoiceInfo("slt", "flite", "flite", 16000, True, True, "US English female (SLT, Arctic), clustergen"),
        VoiceInfo("kal_diphone", "festival", "festvox-kallpc16k", 16000, True, True,
                  "US English male (Kevin), residual-LPC diphone"),
        VoiceInfo("ked_diphone", "festival", "festvox-kdlpc16k", 16000, True, True,
                  "US English male (Kurt), residual-LPC diphone"),
        VoiceInfo("rab_diphone", "festival", "festvox-rablpc16k", 16000, True, True,
                  "British English male (Roger), residual-LPC diphone, mrpa phones"),
        VoiceInfo("cmu_us_slt_arctic_hts", "festival", "festvox-us-slt-hts", 32000, False, False,
                  "US English female (SLT, Arctic), HTS"),
        VoiceInfo("mb-us1", "mbrola", "mbrola-us1", 16000, True, True, "US English female, MBROLA diphone"),
        VoiceInfo("mb-us2", "mbrola", "mbrola-us2", 16000, True, True, "US English male, MBROLA diphone"),
        VoiceInfo("mb-us3", "mbrola", "mbrola-us3", 16000, True, True, "US English male, MBROLA diphone"),
        VoiceInfo("mb-en1", "mbrola", "mbrola-en1", 16000, True, True, "British English male, MBROLA diphone"),
        VoiceInfo("en-us", "espeak-ng", "espeak-ng", 22050, True, True, "US English, espeak-ng formant"),
        VoiceInfo("en", "espeak-ng", "espeak-ng", 22050, True, True, "British English, espeak-ng formant"),
    )
}

_ESPEAK_NAME = re.compile(r"(en(?:-[A-Za-z0-9]+)*)(?:\+([A-Za-z0-9_-]+))?")


@lru_cache(maxsize=None)
def _flite_voices() -> frozenset[str]:
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False)
    text = out.stdout + out.stderr
    return frozenset(text.split(":", 1)[-1].split())


@lru_cache(maxsize=None)
def _festival_voices() -> frozenset[str]:
    out = subprocess.run(
        ["festival", "--batch", "(print (voice.list))"], capture_output=True, text=True, check=False
    )
    return frozenset(re.findall(r"[A-Za-z0-9_]+", out.stdout))


@lru_cache(maxsize=None)
def _espeak_installed() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """espeak-ng's English languages (lowercase), its MBROLA voice names and
    its variants, as ``espeak-ng --voices`` and its data folder list them."""
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True, check=False).stdout
    languages, mbrola = set(), set()
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5:
            continue
        file = fields[4].rsplit("/", 1)[-1]
        if file.startswith("mb-"):
            mbrola.add(file)
        elif fields[1].lower().startswith("en"):
            languages.add(fields[1].lower())
            languages.add(file.lower())
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"Data at:\s*(\S+)", version)
    variants = set()
    if m and (Path(m.group(1)) / "voices" / "!v").is_dir():
        variants = {p.name for p in (Path(m.group(1)) / "voices" / "!v").iterdir() if p.is_file()}
    return frozenset(languages), frozenset(mbrola), frozenset(variants)


def _other_festival_voice(name: str) -> VoiceInfo | None:
    """An installed festival voice not in :data:`VOICES` (e.g. from another
    ``festvox-*`` package): rate through ``Duration_Stretch`` (sox tempo for
    HTS voices), pitch through sox, audio resampled to 16 kHz. Its phones must
    be in :data:`PHONE_MAP` (English radio/CMU phone sets are)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name) or shutil.which("festival") is None:
        return None
    if name not in _festival_voices():
        return None
    hts = name.endswith("_hts")
    return VoiceInfo(name, "festival", f"festvox package of {name}", 16000, not hts, False, "installed festival voice")


def _espeak_voice(name: str) -> VoiceInfo | None:
    """An espeak-ng English voice ``LANGUAGE[+VARIANT]`` (``en-us+f3``,
    ``en-gb-scotland+m2``) not in :data:`VOICES`; whether it is installed is
    :func:`check_voices`'s question."""
    m = _ESPEAK_NAME.fullmatch(name)
    if m is None:
        return None
    variant = f" variant {m.group(2)}" if m.group(2) else ""
    return VoiceInfo(name, "espeak-ng", "espeak-ng", 22050, True, True, f"espeak-ng formant {m.group(1)}{variant}")


def _check_espeak(voice: VoiceInfo) -> None:
    """Raise naming what to install unless espeak-ng (and for MBROLA voices,
    mbrola and the voice's database) is there."""
    packages = "espeak-ng" if voice.engine == "espeak-ng" else f"espeak-ng mbrola {voice.package}"
    missing = [tool for tool in ("espeak-ng", "mbrola")[: 1 if voice.engine == "espeak-ng" else 2]
               if shutil.which(tool) is None]
    if missing:
        raise AsrkitError(
            f"voice '{voice.name}' needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: apt-get install {packages}"
            + ("" if voice.engine == "espeak-ng" else " (Debian contrib/non-free)")
        )
    languages, mbrola, variants = _espeak_installed()
    if voice.engine == "mbrola":
        if voice.name not in mbrola or _mbrola_database(voice) is None:
            raise AsrkitError(f"MBROLA voice '{voice.name}' is not installed: apt-get install {voice.package} "
                              f"(Debian non-free)")
        return
    m = _ESPEAK_NAME.fullmatch(voice.name)
    assert m is not None
    language, variant = m.group(1), m.group(2)
    if language.lower() not in languages:
        raise AsrkitError(f"espeak-ng has no English voice '{language}'; installed: {', '.join(sorted(languages))}")
    if variant is not None and variant not in variants:
        raise AsrkitError(f"espeak-ng has no variant '{variant}' (voice '{voice.name}'); "
                          f"e.g. {', '.join(v for v in ESPEAK_VARIANTS if v in variants)}")


def _mbrola_database(voice: VoiceInfo) -> Path | None:
    code = voice.name.split("-", 1)[1]
    for base in ("/usr/share/mbrola", "/usr/share/mbrola/voices", "/usr/lib/mbrola"):
        for path in (Path(base) / code / code, Path(base) / code):
            if path.is_file():
                return path
    return None


def check_voices(names: Iterable[str]) -> list[VoiceInfo]:
    """Resolve voice names; a missing synthesizer or voice raises
    :class:`AsrkitError` naming the Debian package to install."""
    voices = []
    for name in names:
        voice = VOICES.get(name) or _espeak_voice(name) or _other_festival_voice(name)
        if voice is None:
            raise UsageError(
                f"unknown voice '{name}'; known voices: {', '.join(VOICES)}, any espeak-ng English voice "
                f"LANGUAGE+VARIANT (e.g. en-us+f3, en-gb-scotland+m2) or any other installed festival voice"
            )
        if voice.engine in ("espeak-ng", "mbrola"):
            _check_espeak(voice)
            voices.append(voice)
            continue
        if shutil.which(voice.engine) is None:
            raise AsrkitError(
                f"voice '{name}' needs {voice.engine}, which is not installed: "
                f"apt-get install {voice.engine if voice.engine == 'flite' else 'festival ' + voice.package}"
            )
        available = _flite_voices() if voice.engine == "flite" else _festival_voices()
        if name not in available:
            raise AsrkitError(f"{voice.engine} voice '{name}' is not installed: apt-get install {voice.package}")
        if (not voice.native_rate or not voice.native_pitch) and shutil.which("sox") is None:
            raise AsrkitError(f"voice '{name}' needs sox for rate/pitch changes: apt-get install sox")
        voices.append(voice)
    return voices


# --------------------------------------------------------------------------
# One utterance


def _run(cmd: list[str], what: str, stdin: str | None = None, program: str | None = None) -> str:
    program = program or cmd[0]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              check=False, timeout=300, input=stdin)
    except subprocess.TimeoutExpired:
        raise AsrkitError(f"{what}: {program} did not finish within 300 s") from None
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        raise AsrkitError(f"{what}: {program} failed (exit {proc.returncode}): {err[-1] if err else ''}")
    return proc.stdout


def _flite(voice: VoiceInfo, text: str, stretch: float, f0: float, wav: Path) -> list[tuple[str, float]]:
    cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={stretch:.4f}"]
    if voice.native_pitch:
        cmd += ["--setf", f"f0_shift={f0:.4f}"]
    cmd += ["-psdur", "-t", text, "-o", str(wav)]
    out = _run(cmd, f"flite voice {voice.name}")
    segments = []
    for item in out.split():
        phone, _, end = item.rpartition(":")
        segments.append((map_phone(phone), float(end)))
    return segments


_FESTIVAL_SCRIPT = """\
(voice_{voice})
(Parameter.set 'Duration_Stretch {stretch:.4f})
(if (boundp 'int_lr_params)
    (set! int_lr_params
          (mapcar (lambda (p) (if (string-equal (car p) "target_f0_mean") (list (car p) (* {f0:.4f} (cadr p))) p))
                  int_lr_params)))
(set! utt (Utterance Text "{text}"))
(utt.synth utt)
(utt.save.wave utt "{wav}" 'riff)
(format t "phoneset=%s\\n" (cadr (car (PhoneSet.description '(name)))))
(mapcar (lambda (s) (format t "%s:%f\\n" (item.name s) (item.feat s "end"))) (utt.relation.items utt 'Segment))
"""


def _festival(voice: VoiceInfo, text: str, stretch: float, f0: float, wav: Path) -> list[tuple[str, float]]:
    if '"' in text or "\\" in text:
        raise AsrkitError(f"cannot pass text with quotes or backslashes to festival: {text!r}")
    script = wav.with_suffix(".scm")
    script.write_text(
        _FESTIVAL_SCRIPT.format(voice=voice.name, stretch=stretch, f0=f0 if voice.native_pitch else 1.0,
                                text=text, wav=wav),
        encoding="utf-8",
    )
    out = _run(["festival", "--batch", str(script)], f"festival voice {voice.name}")
    phoneset = re.search(r"^phoneset=(\S+)$", out, re.M)
    engine = "mrpa" if phoneset is not None and phoneset.group(1) == "mrpa" else "festival"
    segments = []
    for line in out.splitlines():
        m = re.fullmatch(r"(\S+):([0-9.eE+-]+)", line.strip())
        if m:
            segments.append((map_phone(m.group(1), engine), float(m.group(2))))
    if not wav.exists() or not segments:
        raise AsrkitError(f"festival voice {voice.name} produced no audio/segments for {text!r}")
    return segments


def _espeak_settings(rate: float, pitch: float) -> tuple[int, int]:
    """espeak-ng's words per minute and pitch parameter for a rate factor and a
    shift in semitones (its base pitch scales by 2^((p - 50) / 50))."""
    wpm = int(np.clip(round(175 * rate), 80, 450))
    return wpm, int(np.clip(round(50 + pitch * 50 / 12), 0, 100))


def _join_silence(segments: list[tuple[str, float]], lead: float, total: float | None) -> list[tuple[str, float]]:
    """Shift ``segments`` by ``lead`` s of silence in front, stretch the last one
    to ``total`` s when given, drop empty segments and merge neighbouring ``sil``."""
    out: list[tuple[str, float]] = [("sil", lead)] if lead > 0 else []
    for phone, end in segments:
        end += lead
        if out and end <= out[-1][1]:
            continue  # no time of its own
        if out and phone == "sil" == out[-1][0]:
            out[-1] = ("sil", end)
        else:
            out.append((phone, end))
    if total is not None and out and total > out[-1][1]:
        if out[-1][0] == "sil":
            out[-1] = ("sil", total)
        else:
            out.append(("sil", total))
    return out


def _espeak_phones(events: list[tuple[str, int]], num_samples: int, rate: int) -> list[tuple[str, float]]:
    """ARPAbet segments from espeak-ng phoneme events ``(mnemonic, start_sample)``."""
    segments: list[tuple[str, float]] = []
    if events and events[0][1] > 0:
        segments.append(("sil", events[0][1] / rate))
    stops = [start for _, start in events[1:]] + [num_samples]
    for k, ((name, start), stop) in enumerate(zip(events, stops)):
        if name not in ESPEAK_PHONES:
            raise AsrkitError(f"espeak-ng produced the unknown phoneme '{name}'; add it to ESPEAK_PHONES")
        if stop <= start:
            continue
        phone = ESPEAK_PHONES[name]
        if phone is None:  # a linking glide: part of the phone before it
            segments.append((segments[-1][0] if segments else "sil", stop / rate))
        elif isinstance(phone, tuple):
            first, second, share = phone
            after = ESPEAK_PHONES.get(events[k + 1][0]) if k + 1 < len(events) else None
            if second == "r" and after == "r":
                segments.append((first, stop / rate))
            else:
                segments.append((first, (start + share * (stop - start)) / rate))
                segments.append((second, stop / rate))
        else:
            segments.append((phone, stop / rate))
    return segments


def _espeak(voice: VoiceInfo, text: str, rate: float, pitch: float, wav: Path) -> tuple[list[tuple[str, float]], float]:
    """A formant voice through libespeak-ng's phoneme events (``espeak_events.py``
    in a fresh process). Returns the segments and the seconds of silence to put
    around the audio."""
    wpm, p = _espeak_settings(rate, pitch)
    helper = Path(__file__).with_name("espeak_events.py")
    out = _run([sys.executable, "-I", "-S", str(helper), voice.name, str(wpm), str(p), str(wav)],
               f"espeak-ng voice {voice.name}", stdin=text, program="libespeak-ng")
    events: list[tuple[str, int]] = []
    sr = num_samples = 0
    for line in out.splitlines():
        name, _, value = line.rpartition(" ")
        if name == "rate":
            sr = int(value)
        elif name == "end":
            num_samples = int(value)
        elif name:
            events.append((name, int(value)))
    if not events or not num_samples:
        raise AsrkitError(f"espeak-ng voice {voice.name} produced no audio/phonemes for {text!r}")
    segments = _espeak_phones(events, num_samples, sr)
    lead = round(LEAD_SILENCE * sr) / sr  # a whole number of samples
    return _join_silence(segments, lead, num_samples / sr + 2 * lead), lead


def _mbrola(voice: VoiceInfo, text: str, rate: float, pitch: float, wav: Path) -> list[tuple[str, float]]:
    """An MBROLA voice: espeak-ng writes the phones with their durations and
    pitch (``--pho``), mbrola renders exactly those durations."""
    wpm, p = _espeak_settings(rate, pitch)
    what = f"espeak-ng voice {voice.name}"
    pho = _run(["espeak-ng", "-v", voice.name, "-s", str(wpm), "-p", str(p), "-q", "--pho"], what, stdin=text)
    rename = MBROLA_RENAME.get(voice.name.split("-", 1)[1], {})
    lines = [f"_ {LEAD_SILENCE * 1000:.0f}"]
    segments: list[tuple[str, float]] = [("sil", LEAD_SILENCE)]
    t = LEAD_SILENCE
    for line in pho.splitlines():
        fields = line.split()
        if len(fields) < 2 or line.startswith(";"):
            continue
        phone = fields[0]
        t += float(fields[1]) / 1000.0
        segments.append((map_phone(phone, "mbrola"), t))
        fields[0] = rename.get(phone, phone)
        lines.append(" ".join(fields))
    if len(segments) < 2:
        raise AsrkitError(f"{what}: espeak-ng wrote no phones for {text!r}")
    pho_file = wav.with_suffix(".pho")
    pho_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    database = _mbrola_database(voice)
    if database is None:
        raise AsrkitError(f"MBROLA voice '{voice.name}' is not installed: apt-get install {voice.package}")
    # -e: a diphone the database lacks becomes silence instead of ending the run
    _run(["mbrola", "-e", str(database), str(pho_file), str(wav)], f"mbrola voice {voice.name}")
    return _join_silence(segments, 0.0, None)


def synthesize(
    voice: VoiceInfo | str,
    text: str,
    rate: float = 1.0,
    pitch: float = 0.0,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Speak normalized ``text`` with ``voice``.

    ``rate`` is the speaking-rate factor (> 1 faster), ``pitch`` a shift in
    semitones. Returns the waveform ``(num_samples,)`` float32 at
    ``sample_rate`` and the phone segments ``[(arpabet39_phone, end_seconds)]``.
    """
    if isinstance(voice, str):
        voice = check_voices([voice])[0]
    if not text.strip():
        raise InputError("cannot synthesize an empty sentence")
    f0 = float(2.0 ** (pitch / 12.0))
    stretch = 1.0 / rate
    with tempfile.TemporaryDirectory(prefix="asrkit-synth-") as tmp:
        wav = Path(tmp) / "utt.wav"
        pad = 0.0  # s of silence to put before and after the audio
        if voice.engine == "flite":
            raw = _flite(voice, text, stretch, f0, wav)
        elif voice.engine == "festival":
            raw = _festival(voice, text, stretch, f0, wav)
        elif voice.engine == "espeak-ng":
            raw, pad = _espeak(voice, text, rate, pitch, wav)
        else:
            raw = _mbrola(voice, text, rate, pitch, wav)
        effects: list[str] = []
        time_scale = 1.0
        if not voice.native_rate and abs(rate - 1.0) > 1e-6:
            effects += ["tempo", "-s", f"{rate:.5f}"]
            time_scale = 1.0 / rate
        if not voice.native_pitch and abs(pitch) > 1e-6:
            effects += ["pitch", f"{pitch * 100:.1f}"]
        if effects:
            out = Path(tmp) / "fx.wav"
            _run(["sox", str(wav), str(out), *effects], f"sox effects for voice {voice.name}")
            wav = out
        try:
            audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:  # pragma: no cover - synthesizer bug
            raise AudioError(f"cannot read synthesized audio of voice {voice.name}: {e}") from None
        audio = audio[:, 0]
    if pad > 0:
        zeros = np.zeros(int(round(pad * sr)), dtype=np.float32)
        audio = np.concatenate([zeros, audio, zeros])
    if sr != sample_rate:
        # torchaudio's windowed-sinc resampler, as asrkit.audio uses for every other
        # resampling (without its "resampling audio" note: this one is internal).
        import torch
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), sr, sample_rate).numpy()
    segments = [(p, end * time_scale) for p, end in raw]
    return audio, segments


# --------------------------------------------------------------------------
# A corpus


@dataclass
class SynthOptions:
    """Options of :func:`synth_corpus` (all of them go into ``synth.json``)."""

    voices: list[str] = field(default_factory=lambda: ["kal16", "awb", "rms", "slt"])
    num: int | None = None
    start_index: int = 0  # utt ids number sentences from here (keeps splits' ids apart)
    seed: int = 0
    variants: int = 2
    rate_range: tuple[float, float] = (0.9, 1.1)
    pitch_range: tuple[float, float] = (-2.0, 2.0)
    noise_snr: float | None = None
    audio_format: str = "flac"  # flac | wav | ogg
    ogg_quality: float = 0.9  # soundfile compression_level for ogg/vorbis (1 = smallest)
    sample_rate: int = SAMPLE_RATE  # of the audio files and the frames of ali (8000: telephone)

    def check(self) -> None:
        if not self.voices:
            raise UsageError("give at least one voice")
        if self.start_index < 0:
            raise UsageError("--start-index must be >= 0")
        if self.num is not None and self.num < 1:
            raise UsageError("--num must be at least 1")
        if not 1 <= self.variants <= 10:
            raise UsageError("--variants must be between 1 and 10")
        lo, hi = self.rate_range
        if not 0.3 <= lo <= hi <= 3.0:
            raise UsageError(f"bad rate range {lo}:{hi}: need 0.3 <= low <= high <= 3")
        lo, hi = self.pitch_range
        if not -12 <= lo <= hi <= 12:
            raise UsageError(f"bad pitch range {lo}:{hi}: need -12 <= low <= high <= 12 semitones")
        if not (8000 <= self.sample_rate <= 48000 and self.sample_rate % 200 == 0):
            raise UsageError(f"bad sample rate {self.sample_rate}: use 8000 or 16000 (a multiple of 200 Hz "
                             f"from 8000 to 48000, so 25 ms windows and 10 ms shifts are whole samples)")
        if self.audio_format not in _FORMATS:
            raise UsageError(f"unknown audio format '{self.audio_format}'; use one of {', '.join(_FORMATS)}")


_FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "ogg": ("OGG", "VORBIS")}


@dataclass
class SynthResult:
    """What :func:`synth_corpus` made."""

    out: Path
    utterances: int
    speakers: int
    seconds: float
    synthesized: int  # made in this run (the rest were resumed)
    skipped_sentences: int  # empty after normalization
    wall_seconds: float


def _speaker_id(voice: str, variant: int) -> str:
    return f"{voice}-v{variant}"


def speaker_voice(speaker: str) -> str:
    """The voice of a synthesized speaker id (the inverse of its naming): ``slt-v1`` -> ``slt``."""
    return speaker.rsplit("-v", 1)[0]


def _variant_base(options: SynthOptions, voice: str, variant: int) -> tuple[float, float]:
    digest = hashlib.sha256(f"{options.seed}/{voice}/{variant}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    if variant == 0:
        # Variant 0 is the voice as it comes, so every voice is heard unmodified once.
        return 1.0 if options.rate_range[0] <= 1.0 <= options.rate_range[1] else float(np.mean(options.rate_range)), (
            0.0 if options.pitch_range[0] <= 0.0 <= options.pitch_range[1] else float(np.mean(options.pitch_range))
        )
    return float(rng.uniform(*options.rate_range)), float(rng.uniform(*options.pitch_range))


def _utt_plan(options: SynthOptions, index: int, speakers: list[tuple[str, int]]) -> dict:
    """Speaker, rate, pitch and noise seed of sentence ``index`` (deterministic)."""
    order = np.random.default_rng(options.seed).permutation(len(speakers))
    voice, variant = speakers[int(order[index % len(speakers)])]
    rng = np.random.default_rng([options.seed, index])
    base_rate, base_pitch = _variant_base(options, voice, variant)
    rate = float(np.clip(base_rate * rng.uniform(0.96, 1.04), *options.rate_range))
    pitch = float(np.clip(base_pitch + rng.uniform(-0.5, 0.5), *options.pitch_range))
    return {
        "voice": voice,
        "variant": variant,
        "speaker": _speaker_id(voice, variant),
        "rate": round(rate, 4),
        "pitch": round(pitch, 3),
        "noise_seed": int(rng.integers(2**31)),
    }


def _add_noise(audio: np.ndarray, segments: list[tuple[str, float]], snr_db: float, seed: int,
               sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to the power of the speech
    (non-``sil``) samples."""
    mask = np.zeros(len(audio), dtype=bool)
    start = 0.0
    for phone, end in segments:
        if phone != "sil":
            mask[int(start * sample_rate) : int(end * sample_rate)] = True
        start = end
    speech = audio[mask] if mask.any() else audio
    power = float(np.mean(speech.astype(np.float64) ** 2)) or 1e-10
    noise = np.random.default_rng(seed).standard_normal(len(audio)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def _read_sentences(text_path: str | os.PathLike, num: int | None) -> tuple[list[tuple[int, str]], int]:
    """Normalized sentences ``(index, words)`` of a one-sentence-per-line file."""
    sentences: list[tuple[int, str]] = []
    skipped = 0
    for _, line in iter_lines(text_path):
        words = normalize(line)
        if not words:
            skipped += 1
            continue
        sentences.append((len(sentences), words))
        if num is not None and len(sentences) >= num:
            break
    if not sentences:
        raise InputError(f"{text_path}: no sentences with words in it")
    return sentences, skipped


def _make_utterance(out: Path, utt: str, words: str, plan: dict, options: SynthOptions, voice: VoiceInfo) -> dict:
    sr = options.sample_rate
    audio, segments = synthesize(voice, words, rate=plan["rate"], pitch=plan["pitch"], sample_rate=sr)
    if options.noise_snr is not None:
        audio = _add_noise(audio, segments, options.noise_snr, plan["noise_seed"], sr)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    labels = frame_labels(segments, len(audio), sr)
    if not labels:
        raise AsrkitError(f"utterance {utt}: synthesized audio shorter than one frame ({len(audio)} samples)")
    fmt, subtype = _FORMATS[options.audio_format]
    path = out / "audio" / f"{utt}.{options.audio_format}"
    with atomic_write(path, "wb") as f:
        kwargs = {"compression_level": options.ogg_quality} if fmt == "OGG" else {}
        sf.write(f, audio, sr, format=fmt, subtype=subtype, **kwargs)
    record = {
        "utt": utt,
        "speaker": plan["speaker"],
        "audio": str(path.relative_to(out)),
        "num_samples": int(len(audio)),
        "text": words,
        "phones": [p for p, _ in segments],
        "ali": labels,
        **{k: plan[k] for k in ("voice", "rate", "pitch")},
    }
    with atomic_write(out / ".synth" / f"{utt}.json") as f:
        json.dump(record, f)
    return record


def _options_record(options: SynthOptions, text_sha: str, num_sentences: int) -> dict:
    rec = asdict(options)
    rec["rate_range"] = list(options.rate_range)
    rec["pitch_range"] = list(options.pitch_range)
    rec["text_sha256"] = text_sha
    rec["sentences"] = num_sentences
    return rec


def synth_corpus(text_path: str | os.PathLike, out: str | os.PathLike, options: SynthOptions, jobs: int = 1) -> SynthResult:
    """Synthesize one utterance per sentence of ``text_path`` into the data dir ``out``.

    Writes ``audio/``, ``wav.scp`` (absolute paths), ``text``, ``text.phones``,
    ``utt2spk``, ``spk2utt``, ``utt2dur``, ``ali`` and ``synth.json`` (the
    options). A re-run with the same options resumes: finished utterances
    (recorded in ``.synth/``) are kept.
    """
    import time

    options.check()
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    voices = check_voices(options.voices)
    by_name = {v.name: v for v in voices}
    sentences, skipped = _read_sentences(text_path, options.num)
    out = Path(out).absolute()
    text_sha = hashlib.sha256("\n".join(w for _, w in sentences).encode()).hexdigest()
    record = _options_record(options, text_sha, len(sentences))
    manifest = out / "synth.json"
    if manifest.exists():
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))
            previous.setdefault("sample_rate", SAMPLE_RATE)  # made before the option existed
        except (OSError, json.JSONDecodeError, AttributeError):
            previous = None
        if previous != record:
            raise UsageError(
                f"{out} was made with other options or text ({manifest}); use a new --out or remove it"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(manifest) as f:
            json.dump(record, f, indent=1, sort_keys=True)

    speakers = [(v.name, k) for v in voices for k in range(options.variants)]
    todo: list[tuple[str, str, dict]] = []
    records: dict[str, dict] = {}
    width = max(6, len(str(len(sentences) - 1 + options.start_index)))
    for index, words in sentences:
        index += options.start_index
        plan = _utt_plan(options, index, speakers)
        utt = f"{plan['speaker']}-{index:0{width}d}"
        done = out / ".synth" / f"{utt}.json"
        if done.exists():
            try:
                rec = json.loads(done.read_text(encoding="utf-8"))
                if (out / rec["audio"]).exists() and rec["text"] == words:
                    records[utt] = rec
                    continue
            except (OSError, json.JSONDecodeError, KeyError):
                pass  # a broken record: make the utterance again
        todo.append((utt, words, plan))

    t0 = time.perf_counter()
    if todo:
        with log.progress() as bar:
            task = bar.add_task(f"synth {out.name}", total=len(sentences), completed=len(records))
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [
                    pool.submit(_make_utterance, out, utt, words, plan, options, by_name[plan["voice"]])
                    for utt, words, plan in todo
                ]
                try:
                    for fut in as_completed(futures):
                        rec = fut.result()
                        records[rec["utt"]] = rec
                        bar.advance(task)
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    wall = time.perf_counter() - t0
    _write_tables(out, records, options.sample_rate)
    seconds = sum(r["num_samples"] for r in records.values()) / options.sample_rate
    return SynthResult(
        out=out,
        utterances=len(records),
        speakers=len({r["speaker"] for r in records.values()}),
        seconds=seconds,
        synthesized=len(todo),
        skipped_sentences=skipped,
        wall_seconds=wall,
    )


def _write_tables(out: Path, records: dict[str, dict], sample_rate: int = SAMPLE_RATE,
                  relative_audio: bool = False) -> None:
    """Write the data dir tables from per-utterance records."""
    wav = {u: (r["audio"] if relative_audio else str(out / r["audio"])) for u, r in records.items()}
    write_table(out / "wav.scp", wav)
    write_table(out / "text", {u: r["text"] for u, r in records.items()})
    write_table(out / "text.phones", {u: r["phones"] for u, r in records.items()})
    write_table(out / "utt2spk", {u: r["speaker"] for u, r in records.items()})
    spk2utt: dict[str, list[str]] = {}
    for u in sorted_keys(records):
        spk2utt.setdefault(records[u]["speaker"], []).append(u)
    write_table(out / "spk2utt", spk2utt)
    write_table(out / "utt2dur", {u: f"{r['num_samples'] / sample_rate:.4f}" for u, r in records.items()})
    write_table(out / "ali", {u: r["ali"] for u, r in records.items()})

