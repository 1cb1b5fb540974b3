"""``asrkit corpus faces``: the drawn identity set (layout, pairs, determinism,
identity kept and nuisances varied, options and output-folder rules)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from asrkit.cli.main import main
from asrkit.corpora.faces import FacesOptions, draw_nuisance, draw_traits, make_pairs, render_face, write_faces
from asrkit.data.images import open_image_folder, open_pair_images, read_pairs, to_float
from asrkit.errors import UsageError

SMALL = FacesOptions(identities=6, per_identity=3, dev_per_identity=2, verify_identities=4, verify_per_identity=3,
                     pairs=12, size=32, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    write_faces(out, SMALL)
    return out


def test_layout_counts_and_pairs(corpus):
    tr = open_image_folder(corpus / "train")
    dv = open_image_folder(corpus / "dev", tr.classes)
    assert tr.classes == [f"id{k:05d}" for k in range(6)] and len(tr) == 18 and tr.shape == (3, 32, 32)
    assert len(dv) == 12 and set(dv.labels.tolist()) == set(range(6))
    assert tr.names[:3] == ["id00000/id00000_0000.png", "id00000/id00000_0001.png", "id00000/id00000_0002.png"]
    assert dv.names[:2] == ["id00000/id00000_0003.png", "id00000/id00000_0004.png"]  # other images than train's
    ver = open_image_folder(corpus / "verify")
    assert ver.classes == ["id00006", "id00007", "id00008", "id00009"]  # never in train
    pairs = read_pairs(corpus / "verify" / "pairs.txt", corpus / "verify" / "pairs_labels.txt")
    assert len(pairs) == 12 and sum(p.label for p in pairs) == 6
    assert all(p.label == int(p.a.split("/")[0] == p.b.split("/")[0]) for p in pairs)
    assert len({(p.a, p.b) for p in pairs}) == 12 and all(p.a != p.b for p in pairs)
    assert all(len(line.split()) == 2 for line in (corpus / "verify" / "pairs.txt").read_text().splitlines())
    ds, idx = open_pair_images(corpus / "verify", pairs)
    assert len(idx) == 12 and ds.shape == (3, 32, 32)
    meta = yaml.safe_load((corpus / "faces.yaml").read_text())
    assert meta["images"] == {"train": 18, "dev": 12, "verify": 12} and meta["options"]["seed"] == 3
    assert not list(corpus.rglob(".*.tmp"))


def test_the_same_options_give_the_same_files_whatever_the_jobs(corpus, tmp_path):
    write_faces(tmp_path, SMALL, jobs=2)
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file() and p.name != ".asrkit")
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all((corpus / f).read_bytes() == (tmp_path / f).read_bytes() for f in files if f.name != "faces.yaml")
    other = tmp_path / "seed4"
    write_faces(other, FacesOptions(**{**SMALL.__dict__, "seed": 4}))
    a, b = (open_image_folder(d / "train").images for d in (corpus, other))
    assert not torch.equal(a, b)


def test_a_rerun_redoes_the_corpus_whole(tmp_path):
    write_faces(tmp_path, FacesOptions(3, 1, 1, 2, 2, 2, size=16))
    write_faces(tmp_path, FacesOptions(2, 1, 0, 0, 0, 0, size=16))
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["id00000", "id00001"]
    assert not (tmp_path / "dev").exists() and not (tmp_path / "verify").exists()


def _pairs_auc(emb: torch.Tensor, same: torch.Tensor) -> float:
    """AUC of cosine similarity between every two rows, ``same`` (N, N) bool says which share an identity."""
    e = torch.nn.functional.normalize(emb, dim=1)
    sim = e @ e.t()
    iu = torch.triu_indices(len(e), len(e), 1)
    s, y = sim[iu[0], iu[1]], same[iu[0], iu[1]]
    pos, neg = s[y], s[~y]
    return float((pos[:, None] > neg[None, :]).float().mean())


def test_identity_kept_nuisances_varied():
    """Images of one identity differ (pose, light, background...), and raw pixels
    tell identities apart only weakly: a verifier has to learn the face."""
    imgs, ids = [], []
    for k in range(12):
        t = draw_traits(np.random.default_rng([0, 1, k]))
        for j in range(6):
            n = draw_nuisance(np.random.default_rng([0, 2, k, j]), t)
            imgs.append(torch.from_numpy(render_face(t, n, 32)).permute(2, 0, 1))
            ids.append(k)
    x = to_float(torch.stack(imgs))                                     # (72, 3, 32, 32)
    ids_t = torch.tensor(ids)
    same = ids_t[:, None] == ids_t[None, :]
    within = (x[0] - x[1]).abs().mean()
    assert within > 0.1  # two images of one identity are far apart in pixels
    flat = x.flatten(1)
    auc = _pairs_auc(flat - flat.mean(0), same)
    assert 0.5 < auc < 0.8, auc
    # the face region's colour says more, but far from all
    centre = x[:, :, 8:24, 8:24]
    auc_c = _pairs_auc(torch.cat([centre.mean((2, 3)), centre.std((2, 3))], 1), same)
    assert auc_c < 0.9, auc_c


def test_nuisance_strength_scales_the_difficulty():
    """--nuisance 0: frontal, evenly lit, clean faces, far easier to tell apart by pixels."""
    aucs = []
    for strength in (0.0, 1.0):
        imgs, ids = [], []
        for k in range(8):
            t = draw_traits(np.random.default_rng([0, 1, k]))
            for j in range(4):
                n = draw_nuisance(np.random.default_rng([0, 2, k, j]), t, strength)
                if strength == 0:
                    assert n.roll == 0 and n.shift == (0, 0) and n.occluder == 0 and n.noise == 0 and not n.jpeg
                imgs.append(torch.from_numpy(render_face(t, n, 32)).permute(2, 0, 1))
                ids.append(k)
        x = to_float(torch.stack(imgs)).flatten(1)
        ids_t = torch.tensor(ids)
        aucs.append(_pairs_auc(x - x.mean(0), ids_t[:, None] == ids_t[None, :]))
    assert aucs[0] > aucs[1] + 0.05, aucs
    with pytest.raises(UsageError, match=r"--nuisance must be in \[0, 1.5\]"):
        FacesOptions(nuisance=2).check()


def test_render_sizes_and_determinism():
    t = draw_traits(np.random.default_rng(5))
    n = draw_nuisance(np.random.default_rng(6), t)
    a = render_face(t, n, 48)
    assert a.shape == (48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_face(t, n, 48))
    assert render_face(t, n, 100).shape == (100, 100, 3)


def test_make_pairs_balanced_and_distinct():
    names = {f"p{k}": [f"p{k}/{j}.png" for j in range(3)] for k in range(5)}
    pairs = make_pairs(names, 21, seed=1)
    assert len(pairs) == 21 and sum(lab for _, _, lab in pairs) == 11
    assert len({frozenset((a, b)) for a, b, _ in pairs}) == 21
    assert pairs == make_pairs(names, 21, seed=1) and pairs != make_pairs(names, 21, seed=2)
    # more same pairs asked than there are: all of them, the rest different
    few = make_pairs({"a": ["a/0", "a/1"], "b": ["b/0", "b/1"]}, 6, seed=0)
    assert sum(lab for _, _, lab in few) == 2 and len(few) == 6


def test_options_are_checked():
    for bad, msg in ((dict(identities=0), "--identities must be >= 1"), (dict(size=8), "--size must be >= 16"),
                     (dict(verify_per_identity=1), "--verify-per-identity >= 2")):
        with pytest.raises(UsageError, match=msg):
            FacesOptions(**bad).check()


def test_cli(tmp_path, capsys):
    out = tmp_path / "faces"
    args = ["corpus", "faces", str(out), "--identities", "2", "--per-identity", "2", "--dev-per-identity", "1",
            "--verify-identities", "2", "--verify-per-identity", "2", "--pairs", "4", "--size", "16", "-j", "1"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "train 4 images of 2 identities, dev 2, verify 4 images of 2 unseen identities, 4 pairs; 16x16" in err
    assert main(args) == 0  # its own folder: redone
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("mine")
    assert main(["corpus", "faces", str(foreign), "--identities", "1", "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert "folder is not empty" in err and "Traceback" not in err and (foreign / "x.txt").exists()
    assert main(["corpus", "faces", str(tmp_path / "new"), "--size", "4"]) == 2
    assert "--size must be >= 16" in capsys.readouterr().err and not (tmp_path / "new").exists()
