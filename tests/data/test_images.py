"""Image folders, verification pairs, image tensors and augmentation
(:mod:`asrkit.data.images`): what is read, in which order, and one clear line
for each kind of bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from asrkit.data.images import (
    Augment,
    make_grid,
    open_image_folder,
    open_images,
    open_pair_images,
    read_image,
    read_lfw_pairs,
    read_pairs,
    save_grid,
    save_image,
    to_float,
    to_uint8,
)
from asrkit.errors import DataError, InputError


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)
    return path


def _rgb(seed, h=6, w=8):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------ read_image
def test_read_image_channels_and_values(tmp_path):
    rgb = _rgb(0)
    x = read_image(_png(tmp_path / "c.png", rgb))
    assert x.dtype == torch.uint8 and x.shape == (3, 6, 8)
    assert torch.equal(x, torch.from_numpy(rgb).permute(2, 0, 1))
    gray = rgb[..., 0].copy()
    g = read_image(_png(tmp_path / "g.png", gray))
    assert g.shape == (1, 6, 8) and torch.equal(g[0], torch.from_numpy(gray))
    g3 = read_image(tmp_path / "g.png", channels=3)
    assert g3.shape == (3, 6, 8) and all(torch.equal(g3[k], g[0]) for k in range(3))
    rgba = np.concatenate([rgb, np.full((6, 8, 1), 7, np.uint8)], axis=2)
    a = read_image(_png(tmp_path / "a.png", rgba, "RGBA"))
    assert torch.equal(a, x)  # alpha dropped
    assert read_image(tmp_path / "c.png", channels=1).shape == (1, 6, 8)
    Image.fromarray(rgb).save(tmp_path / "q.jpg", quality=95)
    assert read_image(tmp_path / "q.jpg").shape == (3, 6, 8)


def test_read_image_bad_files(tmp_path):
    (tmp_path / "text.png").write_text("not a picture\n")
    with pytest.raises(InputError, match=r"text\.png: not an image"):
        read_image(tmp_path / "text.png")
    data = (_png(tmp_path / "whole.png", _rgb(1, 40, 40))).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.png: not an image \("):
        read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match=r"nothere\.png: no such image"):
        read_image(tmp_path / "nothere.png")


# ------------------------------------------------------------------ image folders
def _folder(root, classes=("b", "a", "B"), per=3, size=(6, 8)):
    for ci, c in enumerate(classes):
        for k in range(per):
            _png(root / c / f"{k}.png", _rgb(10 * ci + k, *size))
    return root


def test_open_image_folder_orders_and_labels(tmp_path):
    root = _folder(tmp_path / "tr")
    (root / ".hidden").mkdir()
    _png(root / ".hidden" / "x.png", _rgb(99))
    (root / "a" / "notes.txt").write_text("x")
    (root / "empty").mkdir()
    ds = open_image_folder(root)
    assert ds.classes == ["B", "a", "b"]  # code-point order (C locale), empty and hidden folders left out
    assert ds.names[:4] == ["B/0.png", "B/1.png", "B/2.png", "a/0.png"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.shape == (3, 6, 8) and len(ds) == 9 and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[3], read_image(root / "a" / "0.png"))
    assert "9 images (3x6x8) of 3 classes" == ds.describe()
    # a dev set opened with the training classes: its labels index them, a missing class is fine
    dev = _folder(tmp_path / "dev", classes=("b",), per=2)
    dv = open_image_folder(dev, ds.classes)
    assert dv.classes == ds.classes and dv.labels.tolist() == [2, 2]


def test_open_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match=r"nope: no such dev image folder"):
        open_image_folder(tmp_path / "nope", what="dev image folder")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="must be a folder"):
        open_image_folder(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no images in class folders"):
        open_image_folder(tmp_path / "empty")
    _png(tmp_path / "loose" / "x.png", _rgb(0))
    with pytest.raises(InputError, match=r"found images directly in it, e\.g\. x\.png"):
        open_image_folder(tmp_path / "loose")
    dev = _folder(tmp_path / "dev", classes=("a", "zz"), per=1)
    with pytest.raises(DataError, match=r"dev/zz: class 'zz' of the image folder is not a class of the training"):
        open_image_folder(dev, ["a", "b"])
    mixed = _folder(tmp_path / "mixed", classes=("a", "b"), per=2)
    _png(mixed / "b" / "1.png", _rgb(5, 7, 8))
    with pytest.raises(DataError, match=r"mixed/b/1\.png: the image is 8x7 with 3 channels, but .*mixed/a/0\.png "
                                        r"\(the first of the image folder\) is 8x6 with 3 channels"):
        open_image_folder(mixed)
    gray = _folder(tmp_path / "gray", classes=("a",), per=1)
    _png(gray / "a" / "9.png", _rgb(3)[..., 0].copy())
    with pytest.raises(DataError, match=r"9\.png: the image is 8x6 with 1 channel, but"):
        open_image_folder(gray)
    assert open_image_folder(gray, channels=3).shape == (3, 6, 8)  # converting makes them one shape
    spaced = _folder(tmp_path / "spaced", classes=("a b",), per=1)
    with pytest.raises(DataError, match=r"a class folder name with white space \('a b'\)"):
        open_image_folder(spaced)
    bad = _folder(tmp_path / "bad", classes=("a",), per=1)
    (bad / "a" / "z.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match=r"bad/a/z\.png: not an image"):
        open_image_folder(bad)


def test_open_images_recursive_and_named(tmp_path):
    root = _folder(tmp_path / "p", classes=("x", "a"), per=2)
    _png(root / "top.png", _rgb(7))
    ds = open_images(root)
    assert ds.names == ["a/0.png", "a/1.png", "top.png", "x/0.png", "x/1.png"]
    assert ds.classes == [] and ds.labels.tolist() == [-1] * 5
    named = open_images(root, ["x/1.png", str(root / "top.png")])  # relative or absolute
    assert torch.equal(named.images[0], ds.images[4]) and torch.equal(named.images[1], ds.images[2])
    with pytest.raises(InputError, match=r"p/x/9\.png: no such image"):
        open_images(root, ["x/9.png"])
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match=r"none: no images in the image folder"):
        open_images(tmp_path / "none")


# ------------------------------------------------------------------ pairs
def test_read_pairs_and_labels(tmp_path):
    v = tmp_path / "verify"
    for n in ("p/1.png", "p/2.png", "q/1.png"):
        _png(v / n, _rgb(len(n)))
    absolute = v / "q" / "1.png"
    (v / "pairs.txt").write_text(f"p/1.png p/2.png\np/1.png {absolute}\n\n")
    pairs = read_pairs(v / "pairs.txt")
    assert [(p.a, p.b, p.label) for p in pairs] == [("p/1.png", "p/2.png", None), ("p/1.png", str(absolute), None)]
    (v / "labels.txt").write_text("1\n0\n")
    assert [p.label for p in read_pairs(v / "pairs.txt", v / "labels.txt")] == [1, 0]
    (v / "labels3.txt").write_text(f"p/1.png p/2.png 1\np/1.png {absolute} 0\n")
    assert [p.label for p in read_pairs(v / "pairs.txt", v / "labels3.txt")] == [1, 0]
    (v / "inline.txt").write_text("p/1.png p/2.png 1\nq/1.png p/2.png 0\n")
    assert [p.label for p in read_pairs(v / "inline.txt")] == [1, 0]
    ds, idx = open_pair_images(v, pairs)
    assert ds.names == ["p/1.png", "p/2.png", str(absolute)] and idx == [(0, 1), (0, 2)]

    (v / "short.txt").write_text("1\n")
    with pytest.raises(DataError, match=r"short\.txt: 1 labels for the 2 pairs"):
        read_pairs(v / "pairs.txt", v / "short.txt")
    (v / "swapped.txt").write_text(f"p/1.png {absolute} 0\np/1.png p/2.png 1\n")
    with pytest.raises(DataError, match=r"swapped\.txt:1: names .* but pair 1 of"):
        read_pairs(v / "pairs.txt", v / "swapped.txt")
    (v / "two.txt").write_text("1\n2\n")
    with pytest.raises(InputError, match=r"two\.txt:2: a pair label must be 0 or 1, got '2'"):
        read_pairs(v / "pairs.txt", v / "two.txt")
    (v / "missing.txt").write_text("p/1.png p/2.png\n\np/1.png ghost.png\n")
    with pytest.raises(InputError, match=r"missing\.txt:3: no such image 'ghost\.png'"):
        read_pairs(v / "missing.txt")
    (v / "odd.txt").write_text("p/1.png\n")
    with pytest.raises(InputError, match=r"odd\.txt:1: expected 'img1 img2'"):
        read_pairs(v / "odd.txt")
    (v / "blank.txt").write_text("\n")
    with pytest.raises(InputError, match=r"blank\.txt: no pairs"):
        read_pairs(v / "blank.txt")


def test_read_pairs_csv_header_and_roots(tmp_path):
    _png(tmp_path / "imgs" / "a.png", _rgb(0))
    _png(tmp_path / "imgs" / "b.png", _rgb(1))
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "p.csv").write_text("img1,img2,label\nimgs/a.png,imgs/b.png,0\n")
    with pytest.raises(InputError, match=r"p\.csv:2: no such image 'imgs/a\.png'"):
        read_pairs(tmp_path / "lists" / "p.csv")  # relative to the list's folder by default
    pairs = read_pairs(tmp_path / "lists" / "p.csv", roots=(tmp_path / "lists", tmp_path))
    assert [(p.a, p.b, p.label) for p in pairs] == [("imgs/a.png", "imgs/b.png", 0)]


def test_read_lfw_pairs(tmp_path):
    lfw = tmp_path / "lfw"
    for name, k in (("Ann_Lee", 1), ("Ann_Lee", 3), ("Bo", 2)):
        _png(lfw / name / f"{name}_{k:04d}.jpg", _rgb(k))
    (tmp_path / "pairs.txt").write_text("1\t1\nAnn_Lee\t1\t3\nAnn_Lee\t3\tBo\t2\n")
    pairs = read_lfw_pairs(tmp_path / "pairs.txt", lfw)
    assert [(p.a, p.b, p.label) for p in pairs] == [
        ("Ann_Lee/Ann_Lee_0001.jpg", "Ann_Lee/Ann_Lee_0003.jpg", 1),
        ("Ann_Lee/Ann_Lee_0003.jpg", "Bo/Bo_0002.jpg", 0)]
    (tmp_path / "bad.txt").write_text("10 300\nAnn_Lee 1 2\n")
    with pytest.raises(InputError, match=r"bad\.txt:2: no such image 'Ann_Lee/Ann_Lee_0002\.jpg'"):
        read_lfw_pairs(tmp_path / "bad.txt", lfw)
    (tmp_path / "junk.txt").write_text("10 300\nAnn_Lee one 2\n")
    with pytest.raises(InputError, match=r"junk\.txt:2: expected 'name n1 n2'"):
        read_lfw_pairs(tmp_path / "junk.txt", lfw)


# ------------------------------------------------------------------ tensors
def test_float_round_trip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    f = to_float(x)
    assert f.dtype == torch.float32 and float(f.min()) == -1.0 and float(f.max()) == 1.0
    assert torch.equal(to_uint8(f), x)
    assert torch.equal(to_uint8(torch.tensor([-3.0, 3.0])), torch.tensor([0, 255], dtype=torch.uint8))


def _batch(n=6, c=3, h=10, w=12, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_augment_off_is_identity_and_on_is_deterministic():
    x = _batch()
    assert Augment()(x, torch.Generator().manual_seed(0)) is x
    aug = Augment(crop=3, flip=True, jitter=0.3)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and float(a.min()) >= -1 and float(a.max()) <= 1


def test_augment_crop_and_flip_move_pixels_only():
    x = _batch(n=40)
    aug = Augment(crop=2, flip=True)
    d = aug.draw(40, torch.Generator().manual_seed(1))
    y = aug.apply(x, d)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(40):
        t, left = d.offsets[i].tolist()
        want = padded[i, :, t:t + 10, left:left + 12]
        assert torch.equal(y[i], want.flip(-1) if d.flips[i] else want)
    assert 0 < int(d.flips.sum()) < 40 and len({tuple(o) for o in d.offsets.tolist()}) > 5
    assert not Augment(crop=2).draw(40, torch.Generator()).flips.any()


def test_augment_jitter_matches_the_formula():
    x = _batch(n=5)
    aug = Augment(jitter=0.4)
    d = aug.draw(5, torch.Generator().manual_seed(2))
    y = aug.apply(x, d)
    for i in range(5):
        v = (x[i] + 1) / 2 * d.brightness[i]
        m = v.mean()
        want = ((v - m) * d.contrast[i] + m).clamp(0, 1) * 2 - 1
        torch.testing.assert_close(y[i], want, atol=1e-5, rtol=0)
    assert ((d.brightness >= 0.6) & (d.brightness <= 1.4)).all() and not torch.equal(y, x)


# ------------------------------------------------------------------ writing
def test_save_image_and_grid(tmp_path):
    x = torch.from_numpy(_rgb(4)).permute(2, 0, 1).contiguous()
    save_image(x, tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), x)
    save_image(to_float(x[:1]), tmp_path / "g.png")  # float in [-1, 1], one channel
    assert torch.equal(read_image(tmp_path / "g.png"), x[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "g.png"]  # no temp files left
    imgs = torch.stack([x, 255 - x, x // 2])
    grid = make_grid(imgs, nrow=2, pad=1)
    assert grid.shape == (3, 1 + 2 * 7, 1 + 2 * 9)
    assert torch.equal(grid[:, 1:7, 10:18], 255 - x) and int(grid[0, 0, 0]) == 255
    save_grid(imgs, tmp_path / "grid.png", nrow=2, pad=1)
    assert torch.equal(read_image(tmp_path / "grid.png"), grid)
    with pytest.raises(InputError, match=r"a\.gif: cannot write an image of this kind"):
        save_image(x, tmp_path / "a.gif")
