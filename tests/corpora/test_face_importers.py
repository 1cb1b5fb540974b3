"""Face importers (``asrkit data import faces-11785|lfw|image-folder``) on miniatures
of each layout, made here: what lands in the faces layout, and one clear line
for a wrong layout, with nothing written."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from asrkit.cli.main import main
from asrkit.corpora.importers import import_corpus
from asrkit.data.images import open_image_folder, open_images, read_pairs
from asrkit.errors import InputError


def _img(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
    return path


def _kaggle_2021(root):
    for i, ident in enumerate(("0", "1", "2")):
        for k in range(3):
            _img(root / "train_data" / ident / f"{ident}_{k}.jpg", 10 * i + k)
        _img(root / "val_data" / ident / f"{ident}_v.jpg", 100 + i)
    for k in range(4):
        _img(root / "test_data" / f"{k}.jpg", 200 + k)
        _img(root / "verification_data" / f"v{k}.jpg", 300 + k)
    (root / "verification_pairs_val.txt").write_text(
        "verification_data/v0.jpg verification_data/v1.jpg 1\nverification_data/v2.jpg verification_data/v3.jpg 0\n")
    (root / "verification_pairs_test.txt").write_text("verification_data/v0.jpg verification_data/v3.jpg\n")
    return root


def test_kaggle_2021_layout_through_the_cli(tmp_path, capsys):
    src = _kaggle_2021(tmp_path / "hw2p2")
    dst = tmp_path / "faces"
    assert main(["data", "import", "faces-11785", str(src), str(dst)]) == 0
    cap = capsys.readouterr()
    assert cap.out.split() == [str(dst / s) for s in ("train", "dev", "test", "verify", "verify_test")]
    assert "train: 9 images of 3 classes" in cap.err and "verify: 4 images, 2 pairs" in cap.err
    tr = open_image_folder(dst / "train")
    dv = open_image_folder(dst / "dev", tr.classes)
    assert tr.classes == ["0", "1", "2"] and len(tr) == 9 and len(dv) == 3
    assert (dst / "train" / "0").is_symlink()  # linked, not copied
    assert len(open_images(dst / "test")) == 4
    pairs = read_pairs(dst / "verify" / "pairs.txt", dst / "verify" / "pairs_labels.txt")
    assert [(p.a, p.b, p.label) for p in pairs] == [("verification_data/v0.jpg", "verification_data/v1.jpg", 1),
                                                     ("verification_data/v2.jpg", "verification_data/v3.jpg", 0)]
    assert (dst / "verify" / "verification_data" / "v0.jpg").read_bytes() == \
        (src / "verification_data" / "v0.jpg").read_bytes()
    test_pairs = read_pairs(dst / "verify_test" / "pairs.txt")
    assert len(test_pairs) == 1 and test_pairs[0].label is None
    assert not (dst / "verify_test" / "pairs_labels.txt").exists()


def test_kaggle_later_layouts(tmp_path):
    src = tmp_path / "f22"
    for ident in ("m.01", "m.02"):
        _img(src / "classification" / "train" / ident / "a.jpg")
        _img(src / "classification" / "dev" / ident / "b.jpg")
    _img(src / "classification" / "test" / "t" / "x.jpg")  # a test folder with one sub-folder
    _img(src / "verification" / "dev" / "p.jpg")
    _img(src / "verification" / "dev" / "q.jpg", 1)
    (src / "verification" / "verification_dev.csv").write_text("img1,img2,label\ndev/p.jpg,dev/q.jpg,0\n")
    written = import_corpus("faces-11785", src, tmp_path / "out")
    assert sorted(written) == ["dev", "test", "train", "verify"]
    assert open_image_folder(tmp_path / "out" / "train").classes == ["m.01", "m.02"]
    assert open_images(tmp_path / "out" / "test").names == ["x.jpg"]
    assert [(p.a, p.b, p.label) for p in read_pairs(tmp_path / "out" / "verify" / "pairs.txt",
                                                     tmp_path / "out" / "verify" / "pairs_labels.txt")] == [
        ("dev/p.jpg", "dev/q.jpg", 0)]

    s25 = tmp_path / "s25"
    for k, (name, lab) in enumerate((("a.jpg", "7"), ("b.jpg", "7"), ("c.jpg", "9"))):
        _img(s25 / "cls_data" / "train" / "images" / name, k)
    (s25 / "cls_data" / "train" / "labels.txt").write_text("a.jpg 7\nb.jpg 7\nc.jpg 9\n")
    import_corpus("faces-11785", s25, tmp_path / "out25")
    tr = open_image_folder(tmp_path / "out25" / "train")
    assert tr.classes == ["7", "9"] and tr.names == ["7/a.jpg", "7/b.jpg", "9/c.jpg"]


def test_kaggle_wrong_layouts_are_one_line_and_write_nothing(tmp_path, capsys):
    src = tmp_path / "nope"
    _img(src / "photos" / "x.jpg")
    code = main(["data", "import", "faces-11785", str(src), str(tmp_path / "o1")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "nope: not the 11-785 face layout: no training folder (looked for train, train_data" in err
    src = _kaggle_2021(tmp_path / "hw")
    (src / "verification_pairs_val.txt").write_text("verification_data/v0.jpg verification_data/v1.jpg 1\n"
                                                    "verification_data/v0.jpg verification_data/gone.jpg 0\n")
    code = main(["data", "import", "faces-11785", str(src), str(tmp_path / "o2")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "verification_pairs_val.txt:2: no such image 'verification_data/gone.jpg'" in err
    assert "Traceback" not in err and not (tmp_path / "o2" / "train").exists()
    (src / "verification_pairs_val.txt").write_text("verification_data/v0.jpg verification_data/v1.jpg\n")
    with pytest.raises(InputError, match=r"verification_pairs_val\.txt: the validation pairs need a label"):
        import_corpus("faces-11785", src, tmp_path / "o3")


def _lfw(root):
    for name, n in (("Ann_Lee", 3), ("Bo_Xu", 1), ("Cy", 2)):
        for k in range(1, n + 1):
            _img(root / "lfw" / name / f"{name}_{k:04d}.jpg", k)
    (root / "pairs.txt").write_text("2\t1\nAnn_Lee\t1\t3\nCy\t1\t2\nAnn_Lee\t2\tBo_Xu\t1\nBo_Xu\t1\tCy\t2\n")
    return root


def test_lfw(tmp_path):
    src = _lfw(tmp_path / "lfwsrc")
    written = import_corpus("lfw", src, tmp_path / "out")
    assert written == {"verify": tmp_path / "out" / "verify"}
    v = tmp_path / "out" / "verify"
    pairs = read_pairs(v / "pairs.txt", v / "pairs_labels.txt")
    assert [p.label for p in pairs] == [1, 1, 0, 0]
    assert pairs[2].a == "Ann_Lee/Ann_Lee_0002.jpg" and pairs[2].b == "Bo_Xu/Bo_Xu_0001.jpg"
    assert (v / "Ann_Lee").is_symlink()
    (src / "pairs.txt").write_text("1 1\nAnn_Lee 1 9\n")
    with pytest.raises(InputError, match=r"pairs\.txt:2: no such image 'Ann_Lee/Ann_Lee_0009\.jpg'"):
        import_corpus("lfw", src, tmp_path / "o2")
    (src / "pairs.txt").unlink()
    with pytest.raises(InputError, match=r"not the LFW layout: no pairs file \(looked for pairs\.txt"):
        import_corpus("lfw", src, tmp_path / "o3")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: not the LFW layout: no image folder \(looked for lfw, "):
        import_corpus("lfw", tmp_path / "empty", tmp_path / "o4")


def test_image_folder(tmp_path):
    src = tmp_path / "photos"
    for c, n in (("alice smith", 7), ("bob", 3)):
        for k in range(n):
            _img(src / c / f"{k:02d}.png", k)
    written = import_corpus("image-folder", src, tmp_path / "out")
    assert sorted(written) == ["dev", "train"]
    tr = open_image_folder(tmp_path / "out" / "train")
    dv = open_image_folder(tmp_path / "out" / "dev", tr.classes)
    assert tr.classes == ["alice_smith", "bob"] and len(tr) == 9  # white space in class names made '_'
    assert dv.names == ["alice_smith/04.png"]  # every fifth image of a class
    split = tmp_path / "split"
    _img(split / "train" / "x" / "1.png")
    _img(split / "dev" / "x" / "2.png")
    assert sorted(import_corpus("image-folder", split, tmp_path / "out2")) == ["dev", "train"]
    _img(tmp_path / "flat" / "1.png")
    with pytest.raises(InputError, match=r"flat: not an image folder: no <class>/ sub-folders of images, and no "
                                         r"train/ folder \(found images directly in it, e\.g\. 1\.png\)"):
        import_corpus("image-folder", tmp_path / "flat", tmp_path / "out3")
