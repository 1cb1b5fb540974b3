"""recipes/11785/hw{1,3,4}p2.sh on the course's npy layouts, fabricated from the
embedded tiny corpus: MFCCs of its audio (asrkit featurize), frame labels from
its exact alignments (ali), phone strings from text.phones, characters from
text. Both layouts: per-utterance folders (SPLIT/mfcc/*.npy +
SPLIT/transcript/*.npy, markers [SOS]/[EOS] or <sos>/<eos> as the course
writes them) and whole-split object arrays (train.npy + train_labels.npy ...).
Every stage of each script runs with tiny models; the printed results table
and the Kaggle csv are checked. The refusal tests need no data."""
from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from recipe_helpers import ENV as RECIPE_ENV
from recipe_helpers import ROOT, check_syntax_and_help, run_script, write_conf

RECIPES = ROOT / "recipes" / "11785"
ENV = dict(RECIPE_ENV, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
# the splits fabricated from the tiny corpus's (course name, tiny name, utterances kept)
SPLITS = (("train-clean-100", "train", 60), ("dev-clean", "dev", 12), ("test-clean", "test", 8))


def _asrkit(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", "asrkit", "-q", *args], capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, list[tuple[str, np.ndarray, str, str, str]]]:
    """split -> [(utt, MFCC (T, 27), ali line, text.phones line, text line)] of a part of the tiny corpus."""
    from asrkit.data import FeatureStore

    work = tmp_path_factory.mktemp("tiny")
    _asrkit("corpus", "tiny", str(work / "data"))
    out = {}
    for _, name, keep in SPLITS:
        _asrkit("data", "subset", str(work / "data" / name), str(work / "sub" / name), "--first", str(keep))
        _asrkit("featurize", str(work / "sub" / name), str(work / "feats" / name), "--conf",
                str(ROOT / "conf" / "mfcc13.yaml"), "num_ceps=27", "num_mel_bins=40")
        store = FeatureStore(work / "feats" / name)
        phones = dict(line.split(maxsplit=1) for line in (work / "sub" / name / "text.phones").read_text().splitlines())
        out[name] = [(u, store[u], store.ali[u], phones[u], store.text[u]) for u in store.keys()]
    return out


def _phone_label(p: str) -> str:
    return "[SIL]" if p == "sil" else p.upper()


def _labels(kind: str, ali: str, phones: str, text: str) -> list[str]:
    """The course's labels of one utterance: frame phones (hw1p2), phones (hw3p2) or characters (hw4p2)."""
    if kind == "hw1p2":
        return [_phone_label(p) for p in ali.split()]
    if kind == "hw3p2":
        return [_phone_label(p) for p in phones.split()]
    return list(text.upper())


def fabricate_folders(tiny, kind: str, root: Path, labels: str = "transcript") -> Path:
    """The per-utterance layout: SPLIT/mfcc/UTT.npy and SPLIT/LABELS/UTT.npy (no labels for test);
    ``labels`` is transcript, or transcript/raw as a HW4P2 year has it."""
    sos, eos = ("<sos>", "<eos>") if kind == "hw4p2" else ("[SOS]", "[EOS]")
    for course, name, _ in SPLITS:
        (root / course / "mfcc").mkdir(parents=True)
        if name != "test":
            (root / course / labels).mkdir(parents=True)
        for k, (_, feats, ali, phones, text) in enumerate(tiny[name]):
            utt = f"{1000 + k % 3}-{2000 + k % 3}-{k:04d}"  # LibriSpeech-like ids, as the course's files
            np.save(root / course / "mfcc" / f"{utt}.npy", feats)
            if name != "test":
                np.save(root / course / labels / f"{utt}.npy", np.array([sos, *_labels(kind, ali, phones, text), eos]))
    return root


def fabricate_arrays(tiny, kind: str, root: Path, int_labels: bool = False) -> Path:
    """The whole-split layout: SPLIT.npy / SPLIT_labels.npy object arrays; int_labels: labels as integer
    indices into the sorted label set (as the course's older years), returned by the caller's map."""
    root.mkdir(parents=True)
    vocab = sorted({lab for _, name, _ in SPLITS if name != "test"
                    for _, _, ali, ph, tx in tiny[name] for lab in _labels(kind, ali, ph, tx)})
    for _, name, _ in SPLITS:
        feats = np.empty(len(tiny[name]), dtype=object)
        labels = np.empty(len(tiny[name]), dtype=object)
        for k, (_, f, ali, ph, tx) in enumerate(tiny[name]):
            feats[k] = f
            labs = _labels(kind, ali, ph, tx)
            labels[k] = np.array([vocab.index(x) for x in labs]) if int_labels else np.array(labs)
        np.save(root / f"{name}.npy", feats, allow_pickle=True)
        if name != "test":
            np.save(root / f"{name}_labels.npy", labels, allow_pickle=True)
    (root / "vocab.txt").write_text("".join(f"{i} {v}\n" for i, v in enumerate(vocab)))
    return root


def run(script: str, *args: object) -> subprocess.CompletedProcess:
    return run_script(RECIPES / script, *args, env=ENV)


def _table(out: str, title: str) -> dict[str, float]:
    """The 'metric value' rows under the results title the script prints."""
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(title))
    assert lines[start + 1].split() == ["metric", "value"], out
    rows = {}
    for line in lines[start + 2:]:
        m = re.match(r"^  (\S.*?)\s{2,}(-?[0-9.]+)$", line)
        if not m:
            break
        rows[m.group(1)] = float(m.group(2))
    return rows


def _csv(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    assert text.startswith("id,label\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["id"]) for r in rows] == list(range(len(rows)))
    return rows


def _stages(p: subprocess.CompletedProcess, names: list[str]) -> None:
    assert p.returncode == 0, p.stdout + p.stderr
    for n, name in enumerate(names):
        assert f"== stage {n}: {name}" in p.stdout, p.stdout


@pytest.mark.slow
def test_hw1p2_whole_split_arrays(tiny, tmp_path):
    corpus = fabricate_arrays(tiny, "hw1p2", tmp_path / "hw1p2", int_labels=True)
    write_conf(tmp_path / "frame.yaml", "frame", epochs=2)
    work = tmp_path / "work"
    p = run("hw1p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--conf", tmp_path / "frame.yaml")
    _stages(p, ["import", "train_frame", "score_dev", "submission"])
    print(p.stdout)
    rows = _table(p.stdout, "HW1P2 results (dev, 12 utterances)")
    assert set(rows) == {"frame accuracy (%)"} and 0 <= rows["frame accuracy (%)"] <= 100
    acc = (work / "exp/frame_mlp/dev/accuracy.txt").read_text()
    assert acc.startswith(f"%ACC {rows['frame accuracy (%)']:.2f} [ ")
    frames = sum(f.shape[0] for _, f, *_ in tiny["test"])
    sub = _csv(work / "exp/frame_mlp/submission.csv")
    assert len(sub) == frames and {r["label"] for r in sub} <= {str(i) for i in range(60)}
    # a second run keeps every finished output
    p2 = run("hw1p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--conf", tmp_path / "frame.yaml",
             "--stage", "2")
    assert p2.returncode == 0 and "is up to date" in p2.stdout, p2.stdout + p2.stderr
    assert _table(p2.stdout, "HW1P2 results") == rows


@pytest.mark.slow
def test_hw1p2_per_utterance_folders(tiny, tmp_path):
    corpus = fabricate_folders(tiny, "hw1p2", tmp_path / "hw1p2")
    write_conf(tmp_path / "frame.yaml", "frame", epochs=2)
    work = tmp_path / "work"
    p = run("hw1p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--conf", tmp_path / "frame.yaml")
    _stages(p, ["import", "train_frame", "score_dev", "submission"])
    print(p.stdout)
    assert "folders layout" in p.stdout
    assert "frame accuracy (%)" in _table(p.stdout, "HW1P2 results (dev_clean, 12 utterances)")
    sub = _csv(work / "exp/frame_mlp/submission.csv")
    assert len(sub) == sum(f.shape[0] for _, f, *_ in tiny["test"])
    # the classes are the labels of train and dev (a phone the small training subset lacks keeps its class)
    labelled = [*tiny["train"], *tiny["dev"]]
    assert {r["label"] for r in sub} <= {_phone_label(p) for _, _, ali, _, _ in labelled for p in ali.split()}


@pytest.mark.parametrize("script, words", [
    ("hw1p2.sh", ["0 import", "1 train frame", "2 score dev", "3 submission"]),
    ("hw3p2.sh", ["0 import", "1 phones", "2 train ctc", "3 score dev", "4 submission", "--phone-map"]),
    ("hw4p2.sh", ["0 import", "1 train", "2 score dev", "3 submission", "--model", "fbank/"]),
])
def test_syntax_and_help_name_the_layouts_and_years(script, words):
    # every script states which course years' layouts it accepts
    check_syntax_and_help(RECIPES / script, ["--corpus", "--stage", "--stop-stage", "--dir", "--conf", "--impl",
                                             "fall 2023 HW1P2", "fall 2025 HW3P2", "spring 2019 HW1P2",
                                             "transcript/raw", "train_labels.npy", *words])


def test_refuses_a_missing_config_before_writing(tmp_path):
    for script in ("hw1p2.sh", "hw3p2.sh", "hw4p2.sh"):
        p = run(script, "--stage", "1", "--conf", tmp_path / "none.yaml", "--dir", tmp_path / "w")
        assert p.returncode == 2 and f"no such config file: {tmp_path}/none.yaml" in p.stderr, p.stderr
    p = run("hw4p2.sh", "--model", "rnnt", "--dir", tmp_path / "w")
    assert p.returncode == 2 and "--model takes las or transformer (got 'rnnt')" in p.stderr, p.stderr
    assert not (tmp_path / "w").exists()


def test_refuses_a_missing_or_incomplete_corpus(tmp_path):
    for script in ("hw1p2.sh", "hw3p2.sh", "hw4p2.sh"):
        p = run(script, "--dir", tmp_path / "w")
        assert p.returncode == 2 and "--corpus is required" in p.stderr, p.stderr
        p = run(script, "--corpus", tmp_path / "nowhere", "--dir", tmp_path / "w")
        assert p.returncode == 1 and f"--corpus {tmp_path}/nowhere: no such folder" in p.stderr, p.stderr
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    for name in ("train.npy", "train_labels.npy", "dev.npy"):
        np.save(arrays / name, np.zeros(1))
    p = run("hw1p2.sh", "--corpus", arrays, "--dir", tmp_path / "w")
    assert p.returncode == 1 and p.stderr.strip().endswith(f"--corpus {arrays} is incomplete: dev_labels.npy is missing")
    folders = tmp_path / "folders"
    for part in ("train-clean-100/mfcc", "train-clean-100/transcript", "dev-clean/mfcc"):
        (folders / part).mkdir(parents=True)
        np.save(folders / part / "1-2-0000.npy", np.zeros(1))
    p = run("hw3p2.sh", "--corpus", folders, "--dir", tmp_path / "w")
    assert p.returncode == 1
    assert p.stderr.strip().endswith(f"--corpus {folders} is incomplete: dev*/transcript/*.npy is missing"), p.stderr
    raw = tmp_path / "raw"   # transcripts in transcript/raw/: the dev split's are looked for there too
    for part in ("train-clean-100/mfcc", "train-clean-100/transcript/raw", "dev-clean/mfcc", "dev-clean/transcript"):
        (raw / part).mkdir(parents=True)
        np.save(raw / part / "1-2-0000.npy", np.zeros(1))
    p = run("hw4p2.sh", "--corpus", raw, "--dir", tmp_path / "w")
    assert p.returncode == 1
    assert p.stderr.strip().endswith(f"--corpus {raw} is incomplete: dev*/transcript/raw/*.npy is missing"), p.stderr
    (tmp_path / "empty").mkdir()
    p = run("hw4p2.sh", "--corpus", tmp_path / "empty", "--dir", tmp_path / "w2")
    assert p.returncode == 1 and "is incomplete: train*/mfcc/*.npy is missing" in p.stderr, p.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "w2").exists()


def _phones_without_sil(tiny, split: str) -> list[list[str]]:
    return [[p for p in ph.split() if p != "sil"] for _, _, _, ph, _ in tiny[split]]


@pytest.mark.slow
def test_hw3p2_per_utterance_folders(tiny, tmp_path):
    corpus = fabricate_folders(tiny, "hw3p2", tmp_path / "hw3p2")
    write_conf(tmp_path / "ctc.yaml", "ctc", subsampling=2)
    work = tmp_path / "work"
    p = run("hw3p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--conf", tmp_path / "ctc.yaml",
            "--beam", "4")
    _stages(p, ["import", "phones", "train_ctc", "score_dev", "submission"])
    print(p.stdout)
    rows = _table(p.stdout, "HW3P2 results (dev_clean, 12 utterances, beam 4)")
    assert set(rows) == {"mean Levenshtein distance", "%PER"}
    # the table's distance is the mean over dev of the phone edit distance, recomputed here
    from asrkit.score.distance import levenshtein

    out = work / "exp/ctc_phone/dev"
    refs = {line.split()[0]: line.split()[1:] for line in (out / "ref.txt").read_text().splitlines()}
    hyps = {line.split()[0]: line.split()[1:] for line in (out / "hyp.txt").read_text().splitlines()}
    assert sorted(refs.values()) == sorted(_phones_without_sil(tiny, "dev"))
    assert rows["mean Levenshtein distance"] == pytest.approx(levenshtein(refs, hyps, unit="token").mean, abs=0.005)
    sub = _csv(work / "exp/ctc_phone/submission.csv")
    assert len(sub) == len(tiny["test"])
    phones = {p for ph in _phones_without_sil(tiny, "train") for p in ph}
    assert all(set(r["label"].split()) <= phones for r in sub)


@pytest.mark.slow
def test_hw3p2_integer_arrays_need_a_phone_map(tiny, tmp_path):
    corpus = fabricate_arrays(tiny, "hw3p2", tmp_path / "hw3p2", int_labels=True)
    work = tmp_path / "work"
    p = run("hw3p2.sh", "--corpus", corpus, "--dir", work, "--stop-stage", "1")
    assert p.returncode == 1 and "arrays layout" in p.stdout
    assert "the labels are integers" in p.stderr and "give --phone-map FILE" in p.stderr, p.stderr
    p = run("hw3p2.sh", "--corpus", corpus, "--dir", work, "--stage", "1", "--stop-stage", "1",
            "--phone-map", corpus / "vocab.txt")
    assert p.returncode == 0, p.stdout + p.stderr
    got = [line.split()[1:] for line in (work / "data/train/feats/text.phones").read_text().splitlines()]
    assert got == [ph.split() for _, _, _, ph, _ in tiny["train"]]  # train-000000... keep the array order


@pytest.mark.slow
def test_hw4p2_per_utterance_folders(tiny, tmp_path):
    corpus = fabricate_folders(tiny, "hw4p2", tmp_path / "hw4p2", labels="transcript/raw")
    write_conf(tmp_path / "las.yaml", "las")
    work = tmp_path / "work"
    p = run("hw4p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--conf", tmp_path / "las.yaml",
            "--beam", "2", "--max-len-ratio", "0.5")
    _stages(p, ["import", "train", "score_dev", "submission"])
    print(p.stdout)
    rows = _table(p.stdout, "HW4P2 results (dev_clean, 12 utterances, las, beam 2)")
    assert set(rows) == {"mean Levenshtein distance", "%WER", "%CER"}
    from asrkit.score.distance import levenshtein

    out = work / "exp/las/dev"
    refs = {line.split()[0]: line.split()[1:] for line in (work / "data/dev_clean/text").read_text().splitlines()}
    hyps = {line.split()[0]: line.split()[1:] for line in (out / "hyp.txt").read_text().splitlines()}
    assert sorted(" ".join(r) for r in refs.values()) == sorted(t.upper() for *_, t in tiny["dev"])
    assert rows["mean Levenshtein distance"] == pytest.approx(levenshtein(refs, hyps).mean, abs=0.005)
    sub = _csv(work / "exp/las/submission.csv")
    assert len(sub) == len(tiny["test"])
    hyp_test = [" ".join(line.split()[1:]) for line in (work / "exp/las/test_hyp.txt").read_text().splitlines()]
    assert [r["label"] for r in sub] == hyp_test


@pytest.mark.slow
def test_hw4p2_whole_split_arrays_transformer(tiny, tmp_path):
    corpus = fabricate_arrays(tiny, "hw4p2", tmp_path / "hw4p2")
    write_conf(tmp_path / "tf.yaml", "transformer")
    work = tmp_path / "work"
    p = run("hw4p2.sh", "--corpus", corpus, "--dir", work, "--device", "cpu", "--model", "transformer",
            "--conf", tmp_path / "tf.yaml", "--beam", "2", "--max-len-ratio", "0.5")
    _stages(p, ["import", "train", "score_dev", "submission"])
    print(p.stdout)
    assert "arrays layout" in p.stdout
    text = (work / "data/dev/text").read_text().splitlines()
    assert [line.split(maxsplit=1)[1] for line in text] == [t.upper() for *_, t in tiny["dev"]]
    rows = _table(p.stdout, "HW4P2 results (dev, 12 utterances, transformer, beam 2)")
    assert set(rows) == {"mean Levenshtein distance", "%WER", "%CER"}
    sub = _csv(work / "exp/transformer/submission.csv")
    assert len(sub) == len(tiny["test"])
