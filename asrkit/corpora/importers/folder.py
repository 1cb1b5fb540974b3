"""Plain-folder importer: audio files with a sibling transcript.

    SRC/alice/take1.wav   SRC/alice/take1.txt     (or take1.lab)
    SRC/bob/hello.flac    SRC/bob/hello.txt

The speaker is the parent folder's name; the utt-id is ``SPEAKER-STEM``
(just ``STEM`` when it already starts with the speaker), whitespace turned
into ``_``. A transcript file's lines are joined with single spaces. Audio:
wav, flac, ogg, sph, wv1, mp3 (whatever :func:`asrkit.audio.load` reads).
Files without a transcript, or with an empty one, are left out with a warning.
"""
from __future__ import annotations

from pathlib import Path

from asrkit import log
from asrkit.audio import info
from asrkit.corpora.importers._common import clean_id, walk_files
from asrkit.data.datadir import DataDir
from asrkit.errors import AsrkitError, DataError, InputError
from asrkit.io import read_text

AUDIO = (".wav", ".flac", ".ogg", ".sph", ".wv1", ".mp3")


def import_folder(src: Path, dst: Path) -> dict[str, Path]:
    d = DataDir(text={}, utt2dur={})
    origin: dict[str, Path] = {}
    no_text: list[str] = []
    bad: list[str] = []
    for audio in walk_files(src, AUDIO):
        tr = next((p for p in (audio.with_suffix(".txt"), audio.with_suffix(".lab")) if p.exists()), None)
        if tr is None:
            no_text.append(str(audio))
            continue
        words = " ".join(read_text(tr).split())
        if not words:
            no_text.append(str(audio))
            continue
        spk = clean_id(audio.parent.name)
        stem = clean_id(audio.stem)
        utt = stem if stem.startswith(spk) else f"{spk}-{stem}"
        if utt in origin:
            raise DataError(f"{audio}: utterance id '{utt}' also made from {origin[utt]}; rename one of them")
        try:
            dur = info(audio).duration
        except AsrkitError as e:
            bad.append(f"{audio} ({e})")
            continue
        origin[utt] = audio
        d.wav_scp[utt] = str(audio.resolve())
        d.utt2spk[utt] = spk
        d.text[utt] = words
        d.utt2dur[utt] = dur
    if no_text:
        log.warn(f"{len(no_text)} audio file(s) without a (non-empty) .txt/.lab transcript left out (e.g. {no_text[0]})")
    if bad:
        log.warn(f"{len(bad)} unreadable audio file(s) left out, e.g. {bad[0]}")
    if not d.utt2spk:
        raise InputError(f"{src}: no audio file with a transcript found (audio: {', '.join(AUDIO)}; "
                         f"transcripts: same name with .txt or .lab)")
    return {dst.name: d.save(dst)}
