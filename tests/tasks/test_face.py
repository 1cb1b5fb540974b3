"""``asrkit train face``, ``asrkit verify`` and ``asrkit predict face`` on tiny drawn
image folders: training learns the classes, the dev AUC from data.dev_pairs, the
CSV and pair scores, one checkpoint for scratch and native, and the one-line
refusals (a non-face exp, unlabelled dev pairs, metric auc without pairs)."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from asrkit.cli.main import main
from asrkit.errors import ConfigError, InputError, UsageError
from asrkit.tasks.face import load_face_exp, pair_scores
from asrkit.train import load_config, train

CLASSES = ("ann", "bob", "cid", "dee")


def _draw(root, classes=CLASSES, per=10, seed=0):
    """16x16 'faces': a class's colour and shape, jittered in place and brightness."""
    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per):
            im = Image.new("RGB", (16, 16), tuple(int(v) for v in rng.integers(0, 60, 3)))
            d = ImageDraw.Draw(im)
            x, y = rng.integers(2, 5, 2)
            col = [(220, 60, 60), (60, 220, 60), (60, 60, 220), (220, 220, 60)][ci]
            box = [x, y, x + 9, y + 9]
            (d.ellipse if ci % 2 else d.rectangle)(box, fill=tuple(int(v * rng.uniform(0.8, 1)) for v in col))
            im.save(root / c / f"{c}_{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    _draw(d / "train")
    _draw(d / "dev", per=4, seed=1)
    # verification pairs over the dev images: (same, different) alternating
    lines, labels = [], []
    for ci, c in enumerate(CLASSES):
        other = CLASSES[(ci + 1) % len(CLASSES)]
        lines += [f"dev/{c}/{c}_00.png dev/{c}/{c}_01.png", f"dev/{c}/{c}_02.png dev/{other}/{other}_03.png"]
        labels += ["1", "0"]
    (d / "pairs.txt").write_text("\n".join(lines) + "\n")
    (d / "pairs_labels.txt").write_text("\n".join(labels) + "\n")
    (d / "pairs_3col.txt").write_text("".join(f"{a} {lb}\n" for a, lb in zip(lines, labels)))
    return d


TINY = ["model.channels=[8,16]", "model.blocks=[1,1]", "model.embed_dim=16", "model.stem_stride=1",
        "data.batch_size=8", "train.epochs=6", "train.threads=1", "optim.lr=1e-2", "optim.warmup_steps=5",
        "train.tensorboard=false", "train.log_every=5"]


@pytest.fixture(scope="module")
def exp(faces, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "face"
    cfg = load_config("face", None, [*TINY, f"data.dev_pairs={faces / 'pairs_3col.txt'}", "train.metric=acc"])
    train(cfg, faces / "train", faces / "dev", out)
    return out


def test_training_learns_and_reports_acc_and_auc(exp):
    events = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    dev = [e for e in events if e.get("event") == "dev"]
    assert dev and {"dev_acc", "dev_auc", "dev_loss"} <= set(dev[-1])
    assert max(e["dev_acc"] for e in dev) >= 75.0          # 4 easy classes
    assert max(e["dev_auc"] for e in dev) >= 75.0


def test_one_checkpoint_scratch_and_native(exp, faces):
    from asrkit.data.images import open_pair_images, read_pairs

    pairs = read_pairs(faces / "pairs.txt", faces / "pairs_labels.txt")
    scores = {}
    for impl in ("scratch", "native"):
        loaded = load_face_exp(exp, device="cpu", impl=impl)
        assert loaded.classes == list(CLASSES)
        ds, index = open_pair_images(faces, pairs, channels=loaded.channels)
        import torch

        with torch.no_grad():
            scores[impl] = pair_scores(loaded.model, ds, index, batch_size=3)
    assert scores["scratch"].shape == (8,)
    np.testing.assert_allclose(scores["scratch"], scores["native"], atol=1e-5)


def test_verify_cli_scores_report_and_roc(exp, faces, tmp_path, capsys):
    roc, rep = tmp_path / "roc.png", tmp_path / "rep.json"
    code = main(["-q", "verify", str(exp), str(faces / "pairs.txt"), "--labels", str(faces / "pairs_labels.txt"),
                 "--roc", str(roc), "--report", str(rep), "--device", "cpu", "--batch", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert len(rows) == 8 and rows[0][:2] == ["dev/ann/ann_00.png", "dev/ann/ann_01.png"]
    assert all(-1.0001 <= float(r[2]) <= 1.0001 for r in rows)
    assert "AUC" in err and "TAR@FAR=0.001" in err
    assert roc.read_bytes()[:4] == b"\x89PNG" and 0 <= json.loads(rep.read_text())["auc"] <= 1
    # no labels: scores only; --roc without labels is refused before any work
    assert main(["-q", "verify", str(exp), str(faces / "pairs.txt"), "--device", "cpu", "--batch", "3"]) == 0
    assert capsys.readouterr().out == out
    assert main(["-q", "verify", str(exp), str(faces / "pairs.txt"), "--roc", str(tmp_path / "r2.png")]) == 2
    assert "needs labels" in capsys.readouterr().err and not (tmp_path / "r2.png").exists()


def test_predict_face_csv(exp, faces, capsys):
    assert main(["-q", "predict", "face", str(exp), str(faces / "dev"), "--device", "cpu"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["id", "label"] and len(rows) == 1 + 16
    assert rows[1][0] == "ann/ann_00.png" and all(r[1] in CLASSES for r in rows[1:])
    right = sum(r[1] == r[0].split("/")[0] for r in rows[1:])
    assert right >= 12


def test_refuses_a_non_face_exp(exp, tmp_path, capsys):
    other = tmp_path / "gan"
    other.mkdir()
    (other / "config.yaml").write_text((exp / "config.yaml").read_text().replace("task: face", "task: gan"))
    with pytest.raises(UsageError, match=r"is a gan exp .* needs a face model"):
        load_face_exp(other, command="asrkit verify")
    assert main(["verify", str(other), str(tmp_path / "p.txt")]) != 0
    err = capsys.readouterr().err
    assert "no such file" in err or "gan" in err


def test_config_and_pairs_errors(faces, tmp_path):
    with pytest.raises(ConfigError, match="train.metric"):
        load_config("face", None, [*TINY, "train.metric=auc"])
    cfg = load_config("face", None, [*TINY, f"data.dev_pairs={faces / 'pairs.txt'}"])
    with pytest.raises(InputError, match="need labels"):
        train(cfg, faces / "train", faces / "dev", tmp_path / "x")
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_one_class_folder_is_refused_before_anything_is_written(tmp_path, capsys):
    one = tmp_path / "one"
    _draw(one, classes=CLASSES[:1], per=3)
    out = tmp_path / "exp"
    assert main(["-q", "train", "face", "--train", str(one), "--dev", str(one), "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    assert "at least 2 identities" in err and len(err.splitlines()) == 1
    assert not out.exists()
