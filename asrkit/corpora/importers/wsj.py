"""WSJ0/WSJ1 (LDC93S6, LDC94S13) importer.

Layout as on the LDC discs (any nesting; found by walking ``SRC``)::

    .../wsj0/si_tr_s/011/011c0201.wv1           SPHERE audio (channel 1 mic)
    .../wsj0/transcrp/dots/si_tr_s/011/011c02.dot   'words (011c0201)' lines
    .../wsj1/si_dt_20/4k0/4k0c0301.wv1 + 4k0c0301.dot  (WSJ1 keeps dots beside audio)

One data dir per split folder (the folder two levels above each ``.wv1``:
``si_tr_s``, ``si_dt_05``, ``si_et_05``, ...), plus ``train`` (= si_tr_s,
WSJ0+WSJ1 i.e. si284), ``dev`` (= si_dt_05, Kaldi's dev93 + wsj0's) and
``test`` (= si_et_05, eval92) when those splits exist, and ``lm_text.txt``
(the normalized training transcripts, one per line). Speaker = the first 3
characters of the utt-id.

Transcripts are normalized like Kaldi's ``local/normalize_transcript.pl``:
upper case, ``\\`` escapes removed, ``[<noise]``/``[noise>]``/``[noise/]``/
``[/noise]``, ``~`` and ``.`` dropped, ``<word>`` -> ``WORD``, ``*word*``
(mispronounced) -> ``WORD``, ``--DASH`` -> ``-DASH``, ``%PERCENT`` ->
``PERCENT``, ``.POINT`` -> ``POINT``; verbalized punctuation like ``.PERIOD``
and ``,COMMA`` stays a word. Noise markers like ``[loud_breath]`` stay as
tokens (``[LOUD_BREATH]``) or are dropped with ``drop_noise``.

WSJ ``.wv1`` files are shorten-compressed SPHERE: they become piped
``wav.scp`` entries ``sph2pipe -f wav FILE |`` when ``sph2pipe`` is on PATH;
otherwise the import stops and says so. Uncompressed SPHERE files are
listed by path.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from asrkit import log
from asrkit.audio import sphere
from asrkit.corpora.importers._common import walk_files
from asrkit.data.datadir import DataDir
from asrkit.errors import AudioError, DataError, InputError
from asrkit.io import atomic_write

ALIASES = {"train": "si_tr_s", "dev": "si_dt_05", "test": "si_et_05"}
_DOT_LINE = re.compile(r"^(.*?)\s*\((\w+)\)\s*$")
_NOISE = re.compile(r"^\[\w+\]$")
_DROP = (re.compile(r"^\[<\w+\]$"), re.compile(r"^\[\w+>\]$"), re.compile(r"^\[\w+/\]$"), re.compile(r"^\[/\w+\]$"))
_VERBAL_DELETION = re.compile(r"^<([\w']+)>$")
_MISPRONOUNCED = re.compile(r"^\*([^*]+)\*$")


def normalize_transcript(words: str, drop_noise: bool = False) -> str:
    """One WSJ ``.dot`` transcript -> Kaldi-normalized words."""
    out: list[str] = []
    for w in words.split():
        w = w.upper().replace("\\", "")
        if w == "%PERCENT":
            w = "PERCENT"
        elif w == ".POINT":
            w = "POINT"
        if any(p.match(w) for p in _DROP) or w in ("~", "."):
            continue
        if _NOISE.match(w):
            if not drop_noise:
                out.append(w)
            continue
        m = _VERBAL_DELETION.match(w) or _MISPRONOUNCED.match(w)
        if m:
            w = m.group(1)
        if w == "--DASH":
            w = "-DASH"
        out.append(w)
    return " ".join(out)


def read_dot(path: Path) -> dict[str, str]:
    """``words (utt-id)`` lines of a ``.dot`` file -> utt-id (lower case) -> words."""
    out: dict[str, str] = {}
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _DOT_LINE.match(line.strip())
        if not m:
            raise InputError(f"{path}:{lineno}: not a 'words (utt-id)' transcript line")
        out[m.group(2).lower()] = m.group(1)
    return out


def import_wsj(src: Path, dst: Path, drop_noise: bool = False) -> dict[str, Path]:
    """Import WSJ0/WSJ1 under ``src`` into data dirs under ``dst``."""
    transcripts: dict[str, str] = {}
    for dot in walk_files(src, (".dot",)):
        transcripts.update(read_dot(dot))
    wavs = list(walk_files(src, (".wv1",)))
    if not wavs:
        raise InputError(f"{src}: no .wv1 files found; is this the WSJ0/WSJ1 disc layout?")
    sph2pipe = shutil.which("sph2pipe")
    splits: dict[str, DataDir] = {}
    no_text: list[str] = []
    shortened: list[Path] = []
    for wav in wavs:
        utt = wav.stem.lower()
        words = transcripts.get(utt)
        if words is None:
            no_text.append(utt)
            continue
        with open(wav, "rb") as f:
            head = f.read(4096)
        fields, _ = sphere.parse_header(head, str(wav))
        rate, count, _ = sphere.header_info(fields, str(wav))
        coding = str(fields.get("sample_coding", "pcm")).lower()
        if "shorten" in coding:
            if sph2pipe is None:
                shortened.append(wav)
                continue
            source = f"{sph2pipe} -f wav {wav.resolve()} |"
        else:
            source = str(wav.resolve())
        split = wav.parent.parent.name.lower()
        d = splits.setdefault(split, DataDir(text={}, utt2dur={}))
        if utt in d.utt2spk:
            raise DataError(f"{wav}: utterance '{utt}' appears twice in split {split}")
        d.wav_scp[utt] = source
        d.utt2spk[utt] = utt[:3]
        d.text[utt] = normalize_transcript(words, drop_noise)
        d.utt2dur[utt] = count / rate
    if shortened:
        raise AudioError(f"{len(shortened)} .wv1 file(s) (e.g. {shortened[0]}) are shorten-compressed SPHERE and "
                         f"sph2pipe is not on PATH; install sph2pipe (Kaldi's tools/ builds it) and re-run the import")
    if no_text:
        log.warn(f"{len(no_text)} .wv1 file(s) have no transcript in any .dot file and were left out "
                 f"(e.g. {', '.join(no_text[:5])})")
    empty = {s: [u for u, t in d.text.items() if not t] for s, d in splits.items()}
    written: dict[str, Path] = {}
    for split, d in sorted(splits.items()):
        bad = empty[split]
        if bad:
            log.warn(f"{split}: {len(bad)} utterance(s) with an empty transcript after normalization left out")
            d = d.subset(u for u in d.utt_ids if u not in set(bad))
        written[split] = d.save(dst / split)
        splits[split] = d
    for alias, split in ALIASES.items():
        if split in splits:
            written[alias] = splits[split].save(dst / alias)
    train = splits.get(ALIASES["train"])
    if train is not None:
        with atomic_write(dst / "lm_text.txt") as f:
            f.writelines(train.text[u] + "\n" for u in train.utt_ids)
    return written
