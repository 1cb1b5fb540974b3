"""The data side of the image tasks (:class:`asrkit.tasks.images.ImageTask`):
class units, the batch plan (deterministic, split between processes,
resumable), augmented batches, the checks of ``open_data``, and a tiny run
through the trainer with a probe subclass (resume = an unbroken run, with
augmentation on)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import asrkit.models
from asrkit.data.images import ImageSet, to_float
from asrkit.errors import ConfigError, DataError
from asrkit.tasks import TASKS, gather
from asrkit.tasks.images import (
    ImageBatchPlan,
    ImageCollate,
    ImageItems,
    ImageTask,
    eval_batch,
    image_batches,
    load_class_units,
    write_class_units,
)
from asrkit.train import load_config, train
from asrkit.train.distributed import Dist


class _Tiny(torch.nn.Module):
    """A linear classifier over the pixels, standing in for the face model."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        size = cfg["image_size"]
        h, w = (size, size) if isinstance(size, int) else size
        self.fc = torch.nn.Linear(cfg["in_channels"] * h * w, cfg["num_classes"])
        self.config = dict(cfg)

    def forward(self, x):  # (N, C, H, W) -> (N, classes)
        return self.fc(x.flatten(1))


class _Probe(ImageTask):
    name = "imgprobe"
    model_types = ("probe",)
    metrics = {"acc": "max"}

    @classmethod
    def defaults(cls) -> dict:
        return {**super().defaults(), "model": {"type": "probe"}}

    def resolve_model_config(self, model_cfg: dict) -> dict:
        return {"type": "probe", **model_cfg}

    def loss(self, net, batch, device, autocast):
        logits = net(batch.images)
        return torch.nn.functional.cross_entropy(logits, batch.labels, reduction="sum"), float(len(batch)), {}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        nll = right = n = 0.0
        for idx in image_batches(dev_ds, 4, dist):
            b = eval_batch(dev_ds, idx).to(device)
            logits = model(b.images)
            nll += float(torch.nn.functional.cross_entropy(logits, b.labels, reduction="sum"))
            right += float((logits.argmax(-1) == b.labels).sum())
            n += len(b)
        parts = gather((nll, right, n), dist)
        nll, right, n = (sum(p[k] for p in parts) for k in range(3))
        return {"loss": nll / n, "acc": 100.0 * right / n}


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(TASKS, _Probe.name, _Probe)
    monkeypatch.setattr(asrkit.models, "build_model", _Tiny)
    return _Probe


def _write(root, classes=("cat", "dog", "emu"), per=8, size=(8, 8), seed=0):
    """Images whose mean colour says the class (so a linear model learns it)."""
    rng = np.random.default_rng(seed)
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(per):
            base = np.zeros(3)
            base[ci % 3] = 200
            arr = np.clip(base + rng.normal(0, 40, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{c}_{k:02d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    return _write(d / "train"), _write(d / "dev", per=3, seed=1)


SMALL = ["data.batch_size=5", "train.epochs=3", "train.threads=1", "train.log_every=1", "optim.lr=5e-2",
         "optim.warmup_steps=1", "train.tensorboard=false"]
AUG = ["data.augment_crop=2", "data.augment_flip=true", "data.augment_jitter=0.2"]


# ------------------------------------------------------------------ units
def test_class_units_round_trip(tmp_path):
    write_class_units(["B", "a", "z_9"], tmp_path / "units")
    u = load_class_units(tmp_path / "units")
    assert u.kind == "class" and u.num_classes == 3 and u.units == ["B", "a", "z_9"]
    assert u.symbols([2, 0]) == ["z_9", "B"] and u.tokens([1]) == ["a"] and u.blank_id is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units"]  # the temp folder is gone
    write_class_units(["x"], tmp_path / "units")  # replaces
    assert load_class_units(tmp_path / "units").units == ["x"]


# ------------------------------------------------------------------ the batch plan
def test_plan_is_a_pure_function_and_split_between_ranks():
    plan = ImageBatchPlan(23, 6, seed=3)
    plan.set_epoch(1)
    one = list(plan)
    again = ImageBatchPlan(23, 6, seed=3)
    again.set_epoch(1)
    assert one == list(again) and len(plan) == 4
    plan.set_epoch(2)
    assert [i for b, _ in plan for i in b] != [i for b, _ in one for i in b]  # reshuffled per epoch
    assert sorted(i for b, _ in one for i in b) == list(range(23))
    assert [n for _, n in one] == [6.0, 6.0, 6.0, 5.0]  # the global normalizer: images of the global batch
    ranks = []
    for r in range(3):
        p = ImageBatchPlan(23, 6, seed=3, rank=r, world_size=3)
        p.set_epoch(1)
        ranks.append(list(p))
    for k, (batch, n) in enumerate(one):
        assert sorted(i for rk in ranks for i in rk[k][0]) == sorted(batch) and all(rk[k][1] == n for rk in ranks)
    plan.set_epoch(1, start=2)
    assert list(plan) == one[2:]
    assert list(ImageBatchPlan(5, 2, shuffle=False)) == [([0, 1], 2.0), ([2, 3], 2.0), ([4], 1.0)]
    tail = ImageBatchPlan(7, 3, shuffle=False, rank=0, world_size=2)  # a last batch of 1 < 2 joins the one before
    assert [n for _, n in tail] == [3.0, 4.0]
    with pytest.raises(ValueError):
        ImageBatchPlan(7, 1, world_size=2)


def _set(n=10, shape=(3, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return ImageSet("mem", torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8),
                    torch.arange(n) % 3, ["a", "b", "c"], [f"img{i}" for i in range(n)])


def test_batches_are_scaled_and_augmented_per_image_and_epoch():
    from asrkit.data.images import Augment

    ds = _set()
    plain = ImageCollate(Augment())
    b = plain([ImageItems(ds, Augment(), 0)[i] for i in (4, 1)])
    assert torch.equal(b.images, to_float(ds.images[[4, 1]])) and b.labels.tolist() == [1, 1]
    assert b.utts == ["img4", "img1"] and b.num_frames == 2 and b.images.dtype == torch.float32

    aug = Augment(crop=2, flip=True, jitter=0.3)
    items, col = ImageItems(ds, aug, seed=7), ImageCollate(aug)
    items.set_epoch(3)
    whole = col([items[i] for i in range(10)])
    # an image's augmentation depends on (seed, epoch, index), not on the batch it is in
    part = col([items[i] for i in (6, 2)])
    assert torch.equal(part.images, whole.images[[6, 2]])
    assert not torch.equal(whole.images, to_float(ds.images))
    items.set_epoch(4)
    assert not torch.equal(col([items[i] for i in range(10)]).images, whole.images)
    items.set_epoch(3)
    assert torch.equal(col([items[i] for i in range(10)]).images, whole.images)
    other = ImageItems(ds, aug, seed=8)
    other.set_epoch(3)
    assert not torch.equal(col([other[i] for i in range(10)]).images, whole.images)


def test_dev_batches_cover_the_set_once():
    ds = _set(11)
    seen = [i for r in range(2) for b in image_batches(ds, 4, Dist(r, 2)) for i in b]
    assert sorted(seen) == list(range(11))
    assert image_batches(ds, 4, Dist()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]] == image_batches(ds, 4)
    e = eval_batch(ds, [3, 0])
    assert torch.equal(e.images, to_float(ds.images[[3, 0]])) and e.labels.tolist() == [0, 0]


# ------------------------------------------------------------------ open_data and config
def test_open_data_fills_the_model_section(probe, folders, tmp_path):
    tr, dv = folders
    cfg = load_config("imgprobe", None, SMALL)
    t = probe(cfg)
    data = t.open_data(str(tr), str(dv))
    assert data.train.classes == ["cat", "dog", "emu"] and data.dev.classes == data.train.classes
    assert len(data.train) == 24 and len(data.dev) == 9 and data.input_dim is None
    assert t.image_shape == (3, 8, 8) and cfg["model"]["in_channels"] == 3 and cfg["model"]["image_size"] == 8
    # another task object on the same config (as the trainer makes) builds the model from the section
    m = probe(cfg).build_model(dict(cfg["model"], num_classes=3))
    assert m.fc.in_features == 3 * 8 * 8

    wide = _write(tmp_path / "wide", per=1, size=(6, 8))
    c2 = load_config("imgprobe", None, SMALL)
    probe(c2).open_data(str(wide), str(_write(tmp_path / "wdev", per=1, size=(6, 8))))
    assert c2["model"]["image_size"] == [6, 8]


def test_open_data_errors(probe, folders, tmp_path):
    tr, dv = folders

    def opened(train, dev, *over):
        return probe(load_config("imgprobe", None, [*SMALL, *over])).open_data(str(train), str(dev))

    small = _write(tmp_path / "small", per=1, size=(6, 6))
    with pytest.raises(DataError, match=r"small: the dev images are 6x6 with 3 channel\(s\) .* the training images "
                                        r"8x8 with 3"):
        opened(tr, small)
    extra = _write(tmp_path / "extra", classes=("cat", "yak"), per=1)
    with pytest.raises(DataError, match=r"extra/yak: class 'yak' of the dev image folder is not a class"):
        opened(tr, extra)
    with pytest.raises(DataError, match=r"model\.in_channels=1 but the images of .* give 3; leave model\.in_channels"):
        opened(tr, dv, "model.in_channels=1")
    with pytest.raises(ConfigError, match=r"data\.augment_crop': 8 pixels must be less than the image size 8x8"):
        opened(tr, dv, "data.augment_crop=8")
    assert opened(tr, dv, "data.channels=1").train.shape == (1, 8, 8)
    for over, msg in (("data.batch_size=0", "data.batch_size': must be >= 1"),
                      ("data.augment_jitter=1.5", r"data.augment_jitter': must be in \[0, 1\)"),
                      ("units.dir=somewhere", "leave units.dir out"),
                      ("units.kind=word", "the imgprobe task takes class"),
                      ("data.channels=2", "channels")):
        with pytest.raises(ConfigError, match=msg):
            load_config("imgprobe", None, [*SMALL, over])


# ------------------------------------------------------------------ through the trainer
class _Kill(Exception):
    pass


def test_training_learns_and_resume_equals_an_unbroken_run(probe, folders, tmp_path):
    tr, dv = folders
    over = [*SMALL, *AUG, "train.save_every_steps=1"]
    full = tmp_path / "full"
    res = train(load_config("imgprobe", None, over), tr, dv, full)
    assert res.epochs == 3
    units = load_class_units(full / "units")
    assert units.units == ["cat", "dog", "emu"]
    events = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    dev = [e for e in events if e["event"] == "dev"]
    assert dev[-1]["dev_acc"] > 80  # the colour says the class
    per_epoch = torch.load(full / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]
    assert per_epoch == 5  # 24 images in batches of 5

    def kill(step, epoch, position):
        if step == per_epoch + 2:
            raise _Kill

    cut = tmp_path / "cut"
    with pytest.raises(_Kill):
        train(load_config("imgprobe", None, over), tr, dv, cut, hooks={"after_step": kill})
    train(load_config("imgprobe", None, over), tr, dv, cut, resume=True)
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3 * per_epoch
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["config"]["model"]["in_channels"] == 3 and a["config"]["model"]["image_size"] == 8

    def logged(exp):
        return [{k: v for k, v in e.items() if not k.endswith(("_per_s", "seconds", "epoch_s"))}
                for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines())]

    assert logged(full) == logged(cut)


def test_loader_workers_give_the_same_run(probe, folders, tmp_path):
    """Batches made in a loader process (data.num_workers=1) are the batches made in the
    trainer's process: the augmentation is drawn per image and epoch, not per process."""
    tr, dv = folders
    over = [*SMALL, *AUG, "train.epochs=2"]
    train(load_config("imgprobe", None, over), tr, dv, tmp_path / "w0")
    train(load_config("imgprobe", None, [*over, "data.num_workers=1"]), tr, dv, tmp_path / "w1")
    a = torch.load(tmp_path / "w0" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "w1" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
