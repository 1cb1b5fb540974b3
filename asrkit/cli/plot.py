"""``asrkit plot``: pictures (PNG) of trained models and their results.

    asrkit plot attention exp/las feats/dev --utt spk1-utt007 --out att.png

Thin: parse options, call :mod:`asrkit.plot`, print. Each picture is one
subcommand of :data:`plot_app`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError

plot_app = typer.Typer(
    help="Pictures (PNG) of trained models: attention maps.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@plot_app.command("attention", no_args_is_help=True)
def attention(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir of 'asrkit train las' or 'asrkit train transformer'."),
    feats: Path = typer.Argument(..., metavar="FEATS", help="Feature store holding the utterance (asrkit featurize)."),
    utt: str = typer.Option(..., "--utt", metavar="ID", help="The utterance to decode and draw."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE.png", help="The PNG image to write (atomically)."),
    checkpoint: str = typer.Option(
        "best", "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    band: Optional[int] = typer.Option(
        None, "--band", metavar="FRAMES",
        help="Half-width of the diagonality band in encoder frames (default: 5% of the utterance's frames).",
    ),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
    dpi: int = typer.Option(100, "--dpi", metavar="N", help="Resolution of the image."),
    beam: Optional[int] = typer.Option(
        None, "--beam", metavar="N", help="Draw the best hypothesis of a beam search (default: greedy)."),
    ctc_weight: Optional[float] = typer.Option(
        None, "--ctc-weight", metavar="W",
        help="With --beam: weight of the CTC prefix score (transformer; default as asrkit decode: 0.3)."),
) -> None:
    """Decode one utterance (greedy, or --beam N) and draw its attention map.

    Rows are the decoded units (and the end of sentence), columns the encoder
    frames. Prints 'utt-id tokens' and the map's diagonality (the share of
    attention inside a band that moves monotonically along the utterance:
    near 1 when the model has learned to align) on stdout.

    Example: asrkit plot attention exp/las feats/dev --utt spk1-utt007 --out exp/las/att.png
    """
    from asrkit.config import load_saved_config
    from asrkit.data import FeatureStore
    from asrkit.errors import InputError
    from asrkit.plot import check_png_path, diagonality, plot_attention
    from asrkit.plot.decoded import check_attention_task, check_utterance, decode_attention

    check_png_path(out)
    if band is not None and band < 0:
        raise UsageError(f"--band must be >= 0 frames, got {band}")
    if dpi < 10 or dpi > 1200:
        raise UsageError(f"--dpi must be between 10 and 1200, got {dpi}")
    if not exp.is_dir():
        raise InputError(f"{exp}: no such exp dir")
    check_attention_task(exp, load_saved_config(exp))  # before the model and the store load
    store = FeatureStore(feats)
    check_utterance(store, utt)
    from asrkit.decode import load_exp

    from asrkit.decode.attention import DEFAULT_CTC_WEIGHT, AttentionSearch

    if beam is None and ctc_weight is not None:
        raise UsageError("--ctc-weight weighs the CTC prefix score of a beam search; give --beam N")
    loaded = load_exp(exp, checkpoint=checkpoint, device=device, impl=impl)
    if ctc_weight is None:
        ctc_weight = DEFAULT_CTC_WEIGHT if beam is not None and getattr(loaded.model, "has_ctc", False) else 0.0
    got = decode_attention(loaded, store, utt, search=AttentionSearch(beam=beam, ctc_weight=ctc_weight))
    if got.hit_max:
        log.warn(f"{utt}: the search stopped at the maximum length ({len(got.ids)} units) without an end of "
                 f"sentence")
    d = diagonality(got.attention, band=band)
    plot_attention(got.attention, out, title=f"{utt}: diagonality {d:.2f}", y_labels=got.labels,
                   dpi=dpi)
    typer.echo(" ".join([utt, *got.tokens]))
    typer.echo(f"diagonality {d:.3f}")
    log.info(f"attention map of {utt} ({got.attention.shape[0]} steps x {got.attention.shape[1]} frames) "
             f"written to {out}")


def register(app: typer.Typer) -> None:
    """Add the ``plot`` command group."""
    app.add_typer(plot_app, name="plot")
