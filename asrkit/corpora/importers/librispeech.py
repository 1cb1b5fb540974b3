"""LibriSpeech importer: ``SPLIT/READER/CHAPTER/READER-CHAPTER-NNNN.flac`` with
``READER-CHAPTER.trans.txt`` (``utt-id WORDS`` lines) in each chapter folder.

``SRC`` may be one split folder (``train-clean-100``: ``DST`` becomes that
data dir) or a folder holding several (``LibriSpeech/``: one data dir per
split, ``dev-clean`` -> ``DST/dev_clean``). The speaker is
``READER-CHAPTER`` as in Kaldi's recipe; durations come from the FLAC headers.
"""
from __future__ import annotations

from pathlib import Path

from asrkit import log
from asrkit.audio import info
from asrkit.corpora.importers._common import split_name, walk_files
from asrkit.data.datadir import DataDir
from asrkit.errors import InputError
from asrkit.io import iter_lines


def import_librispeech(src: Path, dst: Path) -> dict[str, Path]:
    trans = list(walk_files(src, (".trans.txt",)))
    if not trans:
        raise InputError(f"{src}: no *.trans.txt files found; is this LibriSpeech (SPLIT/READER/CHAPTER/)?")
    splits: dict[Path, DataDir] = {}
    missing: list[str] = []
    for tf in trans:
        chapter_dir = tf.parent
        split_dir = chapter_dir.parent.parent
        d = splits.setdefault(split_dir, DataDir(text={}, utt2dur={}))
        for lineno, line in iter_lines(tf):
            parts = line.split(None, 1)
            utt = parts[0]
            if utt.count("-") != 2:
                raise InputError(f"{tf}:{lineno}: '{utt}' is not a READER-CHAPTER-NNNN utterance id")
            audio = chapter_dir / f"{utt}.flac"
            if not audio.exists():
                missing.append(str(audio))
                continue
            d.wav_scp[utt] = str(audio.resolve())
            d.utt2spk[utt] = utt.rsplit("-", 1)[0]
            d.text[utt] = parts[1] if len(parts) > 1 else ""
            d.utt2dur[utt] = info(audio).duration
    if missing:
        log.warn(f"{len(missing)} transcript line(s) have no .flac file and were left out (e.g. {missing[0]})")
    written: dict[str, Path] = {}
    single = len(splits) == 1 and next(iter(splits)).resolve() == src.resolve()
    for split_dir, d in sorted(splits.items()):
        out = dst if single else dst / split_name(split_dir.name)
        empty = [u for u, t in d.text.items() if not t]
        if empty:
            log.warn(f"{split_dir.name}: {len(empty)} empty transcript(s) left out")
            d = d.subset(u for u in d.utt_ids if u not in set(empty))
        written[split_name(split_dir.name)] = d.save(out)
    return written
