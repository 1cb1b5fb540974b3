"""``asrkit plot attention``: the group, its refusals (one line each), and its output with a stand-in
model and search (the end-to-end run with a trained LAS/transformer lives with the attention tasks)."""
from __future__ import annotations

from pathlib import Path

import pytest

from plot_util import DiagonalSearch, fake_loaded, make_ctc_exp, make_store

from asrkit.cli.main import main


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("feats") / "dev"
    make_store(p, n=3)
    return p


@pytest.fixture(scope="module")
def ctc_exp(tmp_path_factory) -> Path:
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "ctc", steps=1)


@pytest.fixture
def las_exp(tmp_path, monkeypatch) -> Path:
    """An exp dir whose config says 'las'; load_exp and the greedy search are the stand-ins."""
    import asrkit.decode

    exp = tmp_path / "las"
    exp.mkdir()
    (exp / "config.yaml").write_text("task: las\n")
    monkeypatch.setattr(asrkit.decode, "load_exp", lambda path, **kw: fake_loaded())
    import asrkit.decode.attention

    monkeypatch.setattr(asrkit.decode.attention, "AttentionSearch", lambda **kw: DiagonalSearch())
    return exp


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_group_registers(capsys):
    assert main(["plot", "--help"]) == 0
    out = capsys.readouterr().out
    assert "attention" in out
    assert main(["--help"]) == 0
    assert "plot" in capsys.readouterr().out
    assert main(["plot", "attention", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--utt" in out and "--out" in out and "--checkpoint" in out


def test_a_ctc_exp_has_no_attention(ctc_exp, store, tmp_path, capsys):
    out = tmp_path / "att.png"
    code = main(["plot", "attention", str(ctc_exp), str(store), "--utt", "spk0-utt000", "--out", str(out)])
    assert code == 2
    cap = capsys.readouterr()
    line = _one_line(cap.err)
    assert f"{ctc_exp}: has no attention" in line and "task: ctc" in line
    assert cap.out == "" and not out.exists()


def test_unknown_utterance_is_one_line(las_exp, store, tmp_path, capsys):
    out = tmp_path / "att.png"
    assert main(["plot", "attention", str(las_exp), str(store), "--utt", "nope", "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert "has no utterance 'nope'" in _one_line(cap.err)
    assert cap.out == "" and not out.exists()


def test_output_that_is_not_png_is_refused_first(tmp_path, capsys):
    # checked before anything is read: the exp dir and the store do not even exist
    code = main(["plot", "attention", str(tmp_path / "no-exp"), str(tmp_path / "no-feats"), "--utt", "u",
                 "--out", str(tmp_path / "att.jpg")])
    assert code == 2
    assert "att.jpg: attention maps are written as PNG images" in _one_line(capsys.readouterr().err)


def test_missing_exp_and_bad_band(store, tmp_path, capsys):
    out = str(tmp_path / "a.png")
    assert main(["plot", "attention", str(tmp_path / "no-exp"), str(store), "--utt", "u", "--out", out]) == 1
    assert "no-exp: no such exp dir" in _one_line(capsys.readouterr().err)
    assert main(["plot", "attention", "x", str(store), "--utt", "u", "--out", out, "--band", "-1"]) == 2
    assert "--band must be >= 0" in _one_line(capsys.readouterr().err)


def test_draws_and_prints_hypothesis_and_diagonality(las_exp, store, tmp_path, capsys):
    out = tmp_path / "plots" / "att.png"
    assert main(["plot", "attention", str(las_exp), str(store), "--utt", "spk1-utt001", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    hyp, diag = cap.out.splitlines()
    assert hyp == "spk1-utt001 k ae t"
    assert diag.startswith("diagonality ") and 0.95 < float(diag.split()[1]) < 1.0  # a diagonal over a 1e-3 floor
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "written to" in cap.err
    assert main(["-q", "plot", "attention", str(las_exp), str(store), "--utt", "spk1-utt001", "--out", str(out),
                 "--band", "0"]) == 0
    cap = capsys.readouterr()
    narrow = float(cap.out.splitlines()[1].split()[1])
    assert 0.9 < narrow < float(diag.split()[1]) and cap.err == ""  # a narrower band holds less of the floor
