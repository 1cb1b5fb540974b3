"""plot_attention / save_epoch_attention: a readable PNG, written atomically, refused paths in one line."""
from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from asrkit.errors import OutputError, UsageError
from asrkit.plot import ATTENTION_PLOT, diagonality, plot_attention, save_epoch_attention

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _diag(steps: int = 8, frames: int = 40) -> np.ndarray:
    w = np.full((steps, frames), 0.01)
    w[np.arange(steps), np.linspace(2, frames - 3, steps).astype(int)] = 1.0
    return w / w.sum(1, keepdims=True)


def _read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)  # (H, W, 4) floats in [0, 1]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


def test_writes_a_readable_png_and_no_temp_file(tmp_path):
    out = tmp_path / "deep" / "er" / "att.png"  # missing folders are made
    got = plot_attention(_diag(), out, title="epoch 3, diagonality 0.97", y_labels=list("abcdefgh"))
    assert got == out
    img = _read_png(out)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.05  # a picture, not a blank canvas
    assert _leftovers(out.parent) == []


def test_dpi_sets_the_resolution(tmp_path):
    small = _read_png(plot_attention(_diag(), tmp_path / "a.png", dpi=50))
    big = _read_png(plot_attention(_diag(), tmp_path / "b.png", dpi=100))
    assert big.shape[0] == pytest.approx(2 * small.shape[0], abs=2)
    assert big.shape[1] == pytest.approx(2 * small.shape[1], abs=2)


def test_many_rows_torch_input_and_odd_tokens(tmp_path):
    import torch

    w = torch.softmax(torch.randn(150, 300), dim=-1)  # more rows than labels fit: every k-th is written
    labels = ["$", "a_b", "^", "\\", "x$y$", "日本", "<eos>"] * 21 + ["z"] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no TeX parse errors, no glyph warnings
        plot_attention(w, tmp_path / "many.png", title="50% $x$", y_labels=labels)
    _read_png(tmp_path / "many.png")


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "att.png"
    out.write_bytes(b"old")

    def broken(self, f, **kw):
        f.write(PNG_MAGIC)
        raise RuntimeError("interrupted")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError):
        plot_attention(_diag(), out)
    assert out.read_bytes() == b"old"  # the old file is untouched, no half image in its place
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["att.jpg", "att", "att.png.txt", "att.pdf"])
def test_a_path_that_is_not_png_is_refused(tmp_path, name):
    with pytest.raises(UsageError, match=r"ending in \.png") as e:
        plot_attention(_diag(), tmp_path / name)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_upper_case_suffix_is_fine(tmp_path):
    _read_png(plot_attention(_diag(), tmp_path / "ATT.PNG"))


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        plot_attention(_diag(), tmp_path / "x.png")


def test_an_unwritable_place_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        plot_attention(_diag(), tmp_path / "file" / "att.png")


def test_labels_must_match_the_rows(tmp_path):
    with pytest.raises(ValueError, match="3 labels for an attention map of 8 rows"):
        plot_attention(_diag(), tmp_path / "a.png", y_labels=["a", "b", "c"])


def test_save_epoch_attention(tmp_path):
    w = _diag(10, 60)
    d = save_epoch_attention(w, tmp_path / "plots", 7, y_labels=[f"t{i}" for i in range(10)], utt="spk1-u3")
    assert d == pytest.approx(diagonality(w))
    out = tmp_path / "plots" / ATTENTION_PLOT.format(epoch=7)
    assert out.name == "attention-epoch-7.png"
    _read_png(out)


def test_importing_the_room_loads_neither_matplotlib_nor_torch():
    code = ("import sys, asrkit.plot, asrkit.cli.main; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'torch'}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip() == "[]"
