"""``asrkit corpus fashion-mnist``: idx files -> image folders (made-up idx files,
and Debian's dataset-fashion-mnist where it is installed), and its errors."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from asrkit.cli.main import main
from asrkit.corpora.fashion_mnist import CLASSES, DEBIAN_DIR, read_idx, write_fashion_mnist
from asrkit.data.images import open_image_folder
from asrkit.errors import InputError


def _idx(path, arr: np.ndarray, gz: bool = True) -> None:
    arr = np.asarray(arr, dtype=np.uint8)
    head = (2051 if arr.ndim == 3 else 2049).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = head + arr.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _source(root, n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        _idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz=False)  # plain files are read too
        out[prefix] = (images, labels)
    return out


def test_idx_files_become_image_folders(tmp_path):
    data = _source(tmp_path / "src")
    r = write_fashion_mnist(tmp_path / "out", source=tmp_path / "src")
    assert r.images == {"train": 40, "dev": 20}
    tr = open_image_folder(tmp_path / "out" / "train")
    dv = open_image_folder(tmp_path / "out" / "dev", tr.classes)
    assert tr.classes == list(CLASSES) and tr.shape == (1, 28, 28) and len(dv) == 20
    images, labels = data["train"]
    # image k of the split is <class>/<class>_0000k.png, pixel for pixel
    k = 13
    at = tr.names.index(f"{CLASSES[labels[k]]}/{CLASSES[labels[k]]}_{k:05d}.png")
    assert torch.equal(tr.images[at, 0], torch.from_numpy(images[k])) and int(tr.labels[at]) == labels[k]
    assert (tmp_path / "out" / "fashion_mnist.yaml").is_file()
    few = write_fashion_mnist(tmp_path / "few", per_class=2, dev_per_class=1, source=tmp_path / "src")
    assert few.images == {"train": 20, "dev": 10}
    names = open_image_folder(tmp_path / "few" / "train").names
    assert names[:2] == ["0-tshirt/0-tshirt_00000.png", "0-tshirt/0-tshirt_00010.png"]  # the first of each class


def test_bad_idx_files(tmp_path):
    _source(tmp_path / "src")
    img = tmp_path / "src" / "train-images-idx3-ubyte.gz"
    good = gzip.decompress(img.read_bytes())
    img.write_bytes(gzip.compress(good[:-5]))
    with pytest.raises(InputError, match=r"train-images-idx3-ubyte\.gz: holds 31355 bytes of data, its header says "
                                         r"31360; the file is truncated"):
        write_fashion_mnist(tmp_path / "out", source=tmp_path / "src")
    assert not (tmp_path / "out").exists()  # every input is checked before anything is written
    img.write_bytes(gzip.compress(b"\x00\x00\x09\x99" + good[4:]))
    with pytest.raises(InputError, match=r"not an idx file of uint8 images or labels \(magic number 2457\)"):
        read_idx(img)
    (tmp_path / "src" / "t10k-labels-idx1-ubyte").unlink()
    _idx(img, np.zeros((40, 28, 28)))
    with pytest.raises(InputError, match=r"t10k-labels-idx1-ubyte\.gz: no such file \(no Fashion-MNIST idx file "
                                         r"there\); install it: apt-get install dataset-fashion-mnist"):
        write_fashion_mnist(tmp_path / "out", source=tmp_path / "src")


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = main(["corpus", "fashion-mnist", str(tmp_path / "out"), "--from", str(tmp_path / "nothere")])
    err = capsys.readouterr().err
    assert code == 1 and "nothere: no such folder; install it: apt-get install dataset-fashion-mnist" in " ".join(
        err.split()) and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    _source(tmp_path / "src")
    assert main(["corpus", "fashion-mnist", str(tmp_path / "out"), "--from", str(tmp_path / "src"),
                 "--per-class", "0"]) == 2
    assert "--per-class must be >= 1" in capsys.readouterr().err


def test_debian_package(tmp_path, require_file):
    """The real files, where Debian's package is installed (make test installs it; CI must have it)."""
    require_file(DEBIAN_DIR / "train-images-idx3-ubyte.gz", "dataset-fashion-mnist")
    args = ["-q", "corpus", "fashion-mnist", str(tmp_path / "fm"), "--per-class", "3", "--dev-per-class", "2"]
    assert main(args) == 0
    tr = open_image_folder(tmp_path / "fm" / "train")
    dv = open_image_folder(tmp_path / "fm" / "dev", tr.classes)
    assert len(tr) == 30 and len(dv) == 20 and tr.shape == (1, 28, 28)
    assert read_idx(DEBIAN_DIR / "train-labels-idx1-ubyte.gz").shape == (60000,)
    assert float(tr.images.float().mean()) > 20  # real pictures, not blank
