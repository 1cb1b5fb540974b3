"""Attention maps of encoder-decoder models: how diagonal they are, and their picture.

    from asrkit.plot import diagonality, plot_attention
    d = diagonality(weights)                        # weights (U, S): decoder step x encoder frame
    plot_attention(weights, "att.png", title=f"epoch 3, diagonality {d:.2f}", y_labels=symbols)

or, at the end of a training epoch, both in one call::

    d = save_epoch_attention(weights, exp / "plots", epoch=3)   # -> exp/plots/attention-epoch-3.png

**Diagonality.** A model that has learned to align reads the input from left
to right: each output token attends to a few frames, later tokens to later
frames. :func:`diagonality` measures that as the share of attention mass that
lies inside a band of ``2 * band + 1`` frames that moves along the utterance
without ever moving back (a monotonic path), the band's path chosen to hold as
much mass as it can (dynamic programming over ``(U, S)``, ``O(U * S)``):

    diagonality = max over monotonic paths  1/U * sum_u  mass of row u inside the band at step u

Each row is normalized to sum 1 first (a softmax row already does), so every
output token counts the same. A band near the edges is shifted inward to keep
its width, so a map that attends uniformly scores exactly the chance level
``(2 * band + 1) / S``; a sharp monotonic alignment scores 1 wherever it starts
and whatever its slope (``U != S``); a reversed (right-to-left) map scores
about ``(2 * band + 1) / U``.

The default band is 5% of the utterance's frames on each side,
``max(1, round(0.05 * S))``: a band relative to the length keeps the chance
level near 0.1 for short and long utterances alike, so the numbers of
different utterances and epochs compare.

One limit: a map that attends to the *same* frames at every step (attention
stuck on one spot, a common state early in training) is also monotonic and
scores high. Look at the picture too.

The functions take numpy arrays or torch tensors (on any device) and import
neither torch nor matplotlib at module level; the picture is drawn with
matplotlib's Agg canvas (no display, no pyplot state).
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from asrkit.errors import OutputError, UsageError
from asrkit.io import atomic_write, os_error_line

__all__ = ["ATTENTION_PLOT", "attention_rows", "check_png_path", "default_band", "diagonality", "plot_attention",
           "save_epoch_attention"]

#: File name of an epoch's attention map in ``EXP/plots/`` (``.format(epoch=N)``).
ATTENTION_PLOT = "attention-epoch-{epoch}.png"

# Above this many output tokens, only every k-th y label is written (they would overlap).
_MAX_Y_LABELS = 60


def default_band(frames: int) -> int:
    """Half-width of the diagonality band for an utterance of ``frames`` encoder
    frames: 5% of them, at least 1 (``max(1, round(0.05 * frames))``)."""
    return max(1, int(math.floor(0.05 * frames + 0.5)))


def attention_rows(weights: Any) -> np.ndarray:
    """``weights`` (U, S) as a float64 numpy array whose rows sum to 1.

    Takes a numpy array, a nested list or a torch tensor (detached and moved
    to the CPU here; half precision is widened). Raises :class:`ValueError`
    for a map that is not 2-D, is empty, holds NaN/inf or negative values, or
    has a row without any mass.
    """
    if hasattr(weights, "detach"):  # a torch tensor: no torch import needed to read it
        weights = weights.detach().float().cpu().numpy()
    a = np.array(weights, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"an attention map is 2-D (output steps U, encoder frames S), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"the attention map is empty (shape {a.shape})")
    if not np.isfinite(a).all():
        u = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise ValueError(f"the attention map holds NaN or inf (first in row {u} of {a.shape[0]})")
    if (a < 0).any():
        raise ValueError(f"the attention map holds negative weights (min {a.min():.3g}); pass softmax weights")
    sums = a.sum(axis=1, keepdims=True)  # (U, 1)
    if (sums <= 0).any():
        u = int(np.argwhere(sums[:, 0] <= 0)[0, 0])
        raise ValueError(f"row {u} of the attention map has no mass (all zeros)")
    return a / sums


def diagonality(weights: Any, band: Optional[int] = None) -> float:
    """How diagonal an attention map is, in [0, 1] (see the module docstring).

    Args:
        weights: ``(U, S)`` attention of U output steps over S encoder frames
            (numpy array or torch tensor); rows are normalized to sum 1.
        band: half-width of the band in frames (the band holds ``2 * band + 1``
            frames); default :func:`default_band` ``(S)``, 5% of S. A band as
            wide as the map makes every map score 1.

    Returns:
        The largest mean, over the U rows, of the row's mass inside a band of
        ``2 * band + 1`` frames whose position never moves back from one row
        to the next. 1 for a sharp monotonic alignment (any offset, any
        slope), ``(2 * band + 1) / S`` for uniform attention.
    """
    a = attention_rows(weights)  # (U, S), rows sum to 1
    steps, frames = a.shape
    if band is None:
        band = default_band(frames)
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 0:
        raise ValueError(f"band is a number of frames >= 0, got {band!r}")
    width = min(2 * int(band) + 1, frames)
    # mass[u, j]: row u's mass in the window of frames j .. j + width - 1  (U, S - width + 1)
    csum = np.concatenate([np.zeros((steps, 1)), np.cumsum(a, axis=1)], axis=1)  # (U, S + 1)
    mass = csum[:, width:] - csum[:, : frames - width + 1]
    # best[j]: the most mass a path of windows can hold in rows 0..u with row u's window at j;
    # the window of row u may start at any j' <= j of row u - 1 (monotonic): a running maximum.
    best = mass[0]
    for u in range(1, steps):
        best = mass[u] + np.maximum.accumulate(best)
    return float(min(1.0, max(0.0, best.max() / steps)))


def check_png_path(out_path: str | os.PathLike, what: str = "attention maps") -> Path:
    """``out_path`` as a Path when it can take a PNG image (``what``: the
    pictures, for the message): it ends in ``.png``
    (:class:`~asrkit.errors.UsageError` otherwise) and is not a folder
    (:class:`~asrkit.errors.OutputError`). Commands check before any work."""
    path = Path(out_path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: {what} are written as PNG images; give a path ending in .png")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file path ending in .png")
    return path


def plot_attention(
    weights: Any,
    out_path: str | os.PathLike,
    title: Optional[str] = None,
    x_label: str = "encoder frame",
    y_labels: Optional[Sequence[str]] = None,
    y_label: str = "output token",
    dpi: int = 100,
) -> Path:
    """Draw an attention map as a PNG image, written atomically.

    Rows are output steps (top to bottom), columns encoder frames (left to
    right), brighter is more attention; each row is shown normalized to sum 1.

    Args:
        weights: ``(U, S)`` attention (numpy array or torch tensor).
        out_path: the image to write; it must end in ``.png`` (a
            :class:`~asrkit.errors.UsageError` otherwise, one line). Missing
            folders are made.
        title: a line above the map, e.g. ``f"epoch {n}, diagonality {d:.2f}"``.
        x_label, y_label: axis titles.
        y_labels: one label per row (the output tokens); without them the rows
            are numbered. Above 60 rows every k-th label is written.
        dpi: resolution of the image.

    Returns:
        The path written. A file that cannot be written raises
        :class:`~asrkit.errors.OutputError` (one line); nothing is left behind.
    """
    path = check_png_path(out_path)
    a = attention_rows(weights)  # (U, S)
    steps, frames = a.shape
    if y_labels is not None and len(y_labels) != steps:
        raise ValueError(f"y_labels has {len(y_labels)} labels for an attention map of {steps} rows")
    if int(dpi) < 10:
        raise ValueError(f"dpi must be >= 10, got {dpi}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazily: matplotlib is slow to import
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    width = min(16.0, max(5.0, 2.5 + 0.04 * frames))  # inches
    per_row = 0.2 if y_labels is not None else 0.08
    height = min(12.0, max(3.0, 1.5 + per_row * min(steps, _MAX_Y_LABELS)))
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(a, aspect="auto", origin="upper", interpolation="nearest", cmap="viridis",
                      vmin=0.0, vmax=float(a.max()), extent=(-0.5, frames - 0.5, steps - 0.5, -0.5))
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if y_labels is not None:
        every = max(1, math.ceil(steps / _MAX_Y_LABELS))
        rows = list(range(0, steps, every))
        ax.set_yticks(rows)
        # tokens are data, not TeX: '$' or '_' must be drawn as they are
        ax.set_yticklabels([str(y_labels[u]) for u in rows], parse_math=False,
                           fontsize=8 if len(rows) <= 30 else 6)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        ax.set_title(title, parse_math=False)
    try:
        with atomic_write(path, "wb", encoding=None) as f, warnings.catch_warnings():
            # a token in a script the default font lacks is drawn as a box, not a warning per glyph
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font")
            warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support")
            fig.savefig(f, format="png", dpi=int(dpi))
    except OSError as e:
        raise OutputError(os_error_line(path, e)) from None
    return path


def save_epoch_attention(
    weights: Any,
    plots_dir: str | os.PathLike,
    epoch: int,
    *,
    y_labels: Optional[Sequence[str]] = None,
    utt: Optional[str] = None,
    band: Optional[int] = None,
) -> float:
    """Measure and draw one utterance's attention at the end of a training epoch.

    Writes ``plots_dir/attention-epoch-<epoch>.png`` (:data:`ATTENTION_PLOT`)
    titled ``"epoch N, diagonality D"`` (and the utterance id when given) and
    returns the diagonality, to be logged with the epoch's metrics.
    """
    d = diagonality(weights, band=band)
    title = f"epoch {epoch}, diagonality {d:.2f}" + (f", {utt}" if utt else "")
    plot_attention(weights, Path(plots_dir) / ATTENTION_PLOT.format(epoch=epoch), title=title, y_labels=y_labels)
    return d
