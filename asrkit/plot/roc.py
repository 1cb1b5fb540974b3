"""ROC curves of verification scores (PNG).

    from asrkit.plot.roc import plot_roc
    plot_roc(report, "roc.png", title="exp/face on verify/")   # report: asrkit.score.verification

The false accept rate is drawn on a log axis (``1 / negatives`` to 1), where
the operating points of verification live (TAR@FAR=1e-2, 1e-3, marked), with
the AUC and EER in the legend. matplotlib is imported inside the function
(Agg canvas, no display); the file is written atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from asrkit.errors import OutputError
from asrkit.io import atomic_write, os_error_line

__all__ = ["check_roc_path", "plot_roc"]


def check_roc_path(out_path: str | os.PathLike) -> Path:
    """``out_path`` as a Path when a PNG can be written there (checked before any work)."""
    from asrkit.plot.attention import check_png_path

    return check_png_path(out_path, "ROC plots")


def plot_roc(report, out_path: str | os.PathLike, title: Optional[str] = None, label: str = "model",
             dpi: int = 100) -> Path:
    """Draw the ROC of ``report`` (a :class:`asrkit.score.verification.VerificationReport`) to ``out_path``."""
    path = check_roc_path(out_path)
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    far, tar = np.asarray(report.far_curve), np.asarray(report.tar_curve)
    floor = 1.0 / max(1, report.negatives)
    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # on a log axis FAR = 0 is off the plot: start the curve at the smallest measurable FAR
    ax.step(np.maximum(far, floor), tar, where="post",
            label=f"{label}: AUC {100 * report.auc:.2f}%, EER {100 * report.eer:.2f}%")
    for f, v in report.tar.items():
        if report.resolvable(f):
            ax.plot([f], [v], "o", label=f"TAR@FAR={f:g}: {100 * v:.1f}%")
    chance = np.geomspace(floor, 1.0, 50)
    ax.plot(chance, chance, ":", color="grey", label="chance")      # TAR = FAR, curved on the log axis
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (different identities accepted)")
    ax.set_ylabel("true accept rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, parse_math=False)
    try:
        with atomic_write(path, "wb", encoding=None) as f:
            fig.savefig(f, format="png", dpi=int(dpi))
    except OSError as e:
        raise OutputError(os_error_line(path, e)) from None
    return path
