"""Miniatures of corpora users license or download (WSJ, LibriSpeech), in their exact on-disk
layouts, made from the embedded tiny corpus's speech and sentences: what the corpus recipes'
tests run on (tests/test_recipe_wsj.py, tests/test_recipe_librispeech.py).

WSJ (the LDC discs)::

    11-2.1/wsj0/si_tr_s/SPK/SPKc02NN.wv1            NIST SPHERE, 16 kHz 16-bit PCM
    11-4.1/wsj0/transcrp/dots/si_tr_s/SPK/SPKc02.dot  WSJ0 training transcripts ('words (utt-id)')
    13-2.1/wsj1/si_tr_s/SPK/SPKc02NN.wv1 + SPKc02.dot WSJ1 keeps them beside the audio
    13-16.1/wsj1/si_dt_20/SPK/...                    dev93; 11-6.1/wsj0/si_dt_20/...: WSJ0's own dev set
    11-14.1/wsj0/si_et_20/SPK/...                    eval92
    11-13.1/wsj0/doc/indices/..., 13-34.1/wsj1/doc/indices/...   the disc index files of the sets
    13-32.1/wsj1/doc/lng_modl/lm_train/np_data/{87,88,89}/wYYMMDD.z   compressed SGML-lined LM text

LibriSpeech::

    LibriSpeech/SPLIT/READER/CHAPTER/READER-CHAPTER-NNNN.flac + READER-CHAPTER.trans.txt
    librispeech-lm-norm.txt.gz                       (the LM text, one upper-case sentence a line)
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import soundfile as sf

from asrkit.corpora.tiny import tiny_root
from asrkit.data.table import read_table

RATE = 16000


def tiny_split(split: str) -> list[tuple[str, str, str, Path]]:
    """(utt-id, speaker, words, audio file) of the embedded tiny corpus's ``split``, in utt-id order."""
    root = tiny_root()
    text = read_table(root / split / "text")
    spk = read_table(root / split / "utt2spk")
    wav = read_table(root / split / "wav.scp")
    return [(u, spk[u], text[u], root / wav[u]) for u in sorted(text)]


def tiny_lm_text() -> list[str]:
    return (tiny_root() / "lm_text.txt").read_text(encoding="utf-8").splitlines()


def write_sphere(path: Path, samples: np.ndarray, coding: str = "pcm") -> Path:
    """A NIST SPHERE file (1024-byte header, 16-bit little-endian samples) of float ``samples``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    head = ("NIST_1A\n   1024\n"
            f"sample_count -i {len(pcm)}\nsample_rate -i {RATE}\nchannel_count -i 1\n"
            f"sample_n_bytes -i 2\nsample_byte_format -s2 01\nsample_coding -s{len(coding)} {coding}\n"
            "end_head\n").encode()
    path.write_bytes(head + b" " * (1024 - len(head)) + pcm.tobytes())
    return path


def _audio(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32")
    assert rate == RATE, (path, rate)
    return x


#: words the WSJ miniature adds to some training transcripts: a noise marker (dropped by the import),
#: a verbalized punctuation word (spelled by recipes/wsj/local/lexicon_vp.txt), a word no lexicon has
NOISE, VP_WORD, OOV_WORD = "[loud_breath]", ",COMMA", "Xyzzyqa"


def make_wsj(root: Path, every: int = 2) -> dict[str, list[str]]:
    """The WSJ miniature under ``root`` (every ``every``-th tiny utterance); returns the utterance ids each Kaldi set must hold
    (train_si284, test_dev93, test_eval92) and those it must not (``decoys``), and the training
    utterance with the word no lexicon spells (``oov``)."""
    train, dev, test = (tiny_split(s)[::every] for s in ("train", "dev", "test"))
    expect: dict[str, list[str]] = {"train_si284": [], "test_dev93": [], "test_eval92": [], "decoys": [], "oov": []}
    speakers = sorted({s for _, s, _, _ in train + dev + test})

    def put(items, disc: str, corpus: str, split: str, spk_ids: dict[str, str], dots_apart: bool,
            key: str, edit=None) -> list[str]:
        """Writes the audio and transcripts; returns the index-file lines ('11_2_1:wsj0/si_tr_s/SPK/UTT')."""
        index: list[str] = []
        dots: dict[str, list[str]] = {}
        count: dict[str, int] = {}
        for k, (_, s, words, audio) in enumerate(items):
            spk = spk_ids[s]
            n = count.get(spk, 0) + 1
            count[spk] = n
            utt = f"{spk}c02{n:02d}"
            write_sphere(root / disc / corpus / split / spk / f"{utt}.wv1", _audio(audio))
            w = words.capitalize()
            if edit is not None:
                w = edit(k, utt, w)
            dots.setdefault(spk, []).append(f"{w} ({utt})")
            expect[key].append(utt)
            index.append(f"{disc.replace('-', '_').replace('.', '_')}:{corpus}/{split}/{spk}/{utt}")
        for spk, lines in dots.items():
            folder = (root / "11-4.1" / corpus / "transcrp" / "dots" / split / spk if dots_apart
                      else root / disc / corpus / split / spk)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{spk}c02.dot").write_text("\n".join(lines) + "\n", encoding="latin-1")
        return index

    def train_edit(k: int, utt: str, w: str) -> str:
        if k % 7 == 0:
            w = f"{NOISE} {w}"
        if k % 11 == 3:
            w = w.replace(" ", f" {VP_WORD} ", 1)
        if k == 5:
            w = f"{w} {OOV_WORD}"
            expect["oov"].append(utt)
        return w

    # training speakers alternate between WSJ0 (speaker ids 01a, 01b, ...) and WSJ1 (46a, 46b, ...)
    train_speakers = sorted({s for _, s, _, _ in train})
    wsj0 = {s: f"01{chr(97 + i)}" for i, s in enumerate(train_speakers[0::2])}
    wsj1 = {s: f"46{chr(97 + i)}" for i, s in enumerate(train_speakers[1::2])}
    ndx0 = put([t for t in train if t[1] in wsj0], "11-2.1", "wsj0", "si_tr_s", wsj0, True, "train_si284",
               train_edit)
    ndx1 = put([t for t in train if t[1] in wsj1], "13-2.1", "wsj1", "si_tr_s", wsj1, False, "train_si284",
               train_edit)
    # Kaldi leaves WSJ0's speaker 401 out of si284 (its index lists it); WSJ0's own si_dt_20 is not dev93
    ndx0 += put(train[:3], "11-2.1", "wsj0", "si_tr_s", {s: "401" for s in speakers}, True, "decoys")
    put(dev[:3], "11-6.1", "wsj0", "si_dt_20", {s: "01z" for s in speakers}, False, "decoys")
    dev_ndx = put(dev, "13-16.1", "wsj1", "si_dt_20", {s: f"4k{i}" for i, s in enumerate(speakers)}, False,
                  "test_dev93")
    test_ndx = put(test, "11-14.1", "wsj0", "si_et_20", {s: f"44{i}" for i, s in enumerate(speakers)}, False,
                   "test_eval92")
    # the disc index files; the last dev93 and eval92 utterances are in their folders but not listed
    for key in ("test_dev93", "test_eval92"):
        expect["decoys"].append(expect[key].pop())
    indices = {"13-34.1/wsj1/doc/indices/si_tr_s.ndx": [f"{x}.wv1" for x in ndx1],
               "11-13.1/wsj0/doc/indices/train/tr_s_wv1.ndx": [f"{x}.wv1" for x in ndx0],
               "13-34.1/wsj1/doc/indices/h1_p0.ndx": [f"{x}.wv1" for x in dev_ndx[:-1]],
               "11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx": test_ndx[:-1]}   # this one has no '.wv1'
    for rel, lines in indices.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f";; index file {Path(rel).name}\n;;\n" + "\n".join(lines) + "\n")
    # the LM text: a few compressed files a year, SGML markup lines around upper/lower-case sentences
    np_data = root / "13-32.1" / "wsj1" / "doc" / "lng_modl" / "lm_train" / "np_data"
    lines = tiny_lm_text()
    for y, year in enumerate(("87", "88", "89")):
        for f in range(2):
            part = lines[(2 * y + f)::6]
            body = [f"<art.{year}0{f + 1}01.0001>", "<p>"]
            for i, s in enumerate(part):
                body += ["<s>", s if i % 2 else s.upper(), "</s>"]
            body += ["</p>", "</art>"]
            out = np_data / year / f"w{year}0{f + 1}01.z"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(gzip.compress(("\n".join(body) + "\n").encode()))
    return expect


def make_librispeech(root: Path, every: int = 2) -> dict[str, list[str]]:
    """``root/LibriSpeech/{train-clean-100,dev-clean,test-clean,test-other}`` (every ``every``-th
    tiny utterance) and ``root/lm/librispeech-lm-norm.txt.gz``; returns the utterance ids of each split."""
    splits = {"train-clean-100": tiny_split("train")[::every], "dev-clean": tiny_split("dev")[::every]}
    test = tiny_split("test")[::every]
    splits["test-clean"], splits["test-other"] = test[0::2], test[1::2]
    speakers = sorted({s for items in splits.values() for _, s, _, _ in items})
    reader = {s: str(19 + 7 * i) for i, s in enumerate(speakers)}
    out: dict[str, list[str]] = {}
    for split, items in splits.items():
        chapter = str(198 + 100 * list(splits).index(split))
        by_chapter: dict[Path, list[str]] = {}
        for _, s, words, audio in items:
            d = root / "LibriSpeech" / split / reader[s] / chapter
            d.mkdir(parents=True, exist_ok=True)
            lines = by_chapter.setdefault(d, [])
            utt = f"{reader[s]}-{chapter}-{len(lines):04d}"
            sf.write(d / f"{utt}.flac", _audio(audio), RATE)
            lines.append(f"{utt} {words.upper()}")
            out.setdefault(split, []).append(utt)
        for d, lines in by_chapter.items():
            (d / f"{d.parent.name}-{d.name}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "lm").mkdir(parents=True, exist_ok=True)
    with gzip.open(root / "lm" / "librispeech-lm-norm.txt.gz", "wt") as f:
        f.write("\n".join(s.upper() for s in tiny_lm_text()) + "\n")
    return out
