"""``asrkit tune EXP DATA REF --lm LM``: LM weight / word bonus grid search on a dev set.

Thin: parse options, call :mod:`asrkit.pipeline.tune`, print the grid. The
table and the best point go to stdout, progress to stderr; the best values
are written to ``EXP/lm_tuning.yaml`` for ``asrkit decode``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import InputError, UsageError


def tune_command(
    exp: Path = typer.Argument(..., metavar="EXP", help="Exp dir of a CTC model (asrkit train ctc)."),
    data: Path = typer.Argument(
        ..., metavar="DATA",
        help="Saved emissions (asrkit decode --save-emissions DIR) or a feature store (the model runs once).",
    ),
    ref: Path = typer.Argument(..., metavar="REF", help="Reference text of DATA (Kaldi text: 'utt-id words')."),
    lm: Path = typer.Option(
        ..., "--lm", metavar="LM.arpa|LM.bin", help="Word n-gram LM (ARPA or kenlm binary, order >= 2), as in decode."
    ),
    lm_weights: Optional[str] = typer.Option(
        None, "--lm-weights", metavar="SPEC",
        help="LM weights to try: a comma list (0.3,0.5,1) or START:STOP:STEP, stop included "
             "(default 0:2:0.25).",
    ),
    word_bonuses: Optional[str] = typer.Option(
        None, "--word-bonuses", metavar="SPEC",
        help="Word bonuses to try, same forms (default -3:3:1 for flashlight, -2:4:1 for pyctcdecode).",
    ),
    beam: int = typer.Option(20, "--beam", metavar="N", help="Beam width of every search."),
    backend: Optional[str] = typer.Option(
        None, "--backend", metavar="flashlight|pyctcdecode",
        help="LM beam search (default: flashlight, as 'asrkit decode --lm').",
    ),
    lexicon: Optional[Path] = typer.Option(
        None, "--lexicon", metavar="FILE",
        help="Words the search may produce, replacing the model's lexicon / the ARPA unigrams, as for "
             "'asrkit decode --lexicon' (phone models: their pronunciations).",
    ),
    extra_lexicon: Optional[Path] = typer.Option(
        None, "--extra-lexicon", metavar="FILE",
        help="Words added to the model's lexicon / the ARPA unigrams, as for 'asrkit decode --extra-lexicon'.",
    ),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", metavar="NAME|FILE",
        help="With a feature store: best (default), last, epoch-N or a .pt file.",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", metavar="J", help="Worker processes sharing the grid."),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    batch_size: int = typer.Option(16, "--batch-size", metavar="N", help="Utterances per forward pass."),
) -> None:
    """Pick the LM weight and word bonus with the lowest WER on a dev set.

    Every grid point reruns the beam search over the model's log-probabilities
    (computed once) and scores it against REF; the grid goes to stdout, the
    best values to EXP/lm_tuning.yaml, which 'asrkit decode --lm LM' then uses
    when --lm-weight/--word-bonus are not given.

    Example: asrkit decode exp/ctc feats/dev --save-emissions exp/ctc/emis_dev > /dev/null &&
    asrkit tune exp/ctc exp/ctc/emis_dev data/dev/text --lm exp/lm3.arpa --jobs 4
    """
    from asrkit.decode.backends import BACKENDS, resolve_backend
    from asrkit.decode.beam import check_beam
    from asrkit.pipeline import tune
    from asrkit.score.report import counts_line, render_plain, render_rich

    # -- usage (exit 2) before any work
    default_w, default_b = tune.default_grids(backend)
    weights = tune.parse_grid(lm_weights if lm_weights is not None else default_w, "--lm-weights", minimum=0.0)
    bonuses = tune.parse_grid(word_bonuses if word_bonuses is not None else default_b, "--word-bonuses")
    for name, value in (("--jobs", jobs), ("--batch-size", batch_size)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    check_beam(beam, warn=False)  # the decoder warns about a wide beam once it is built
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    # -- inputs (exit 1); cheap ones first, so a typo does not wait for the model
    for path, what in ((lm, "--lm"), (ref, "REF"), (lexicon, "--lexicon"), (extra_lexicon, "--extra-lexicon")):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: no such file ({what})" if not path.exists() else f"{path}: is not a file")
    units = tune.exp_units(exp)
    backend = resolve_backend(units.kind, True, backend)  # e.g. pyctcdecode cannot decode phones
    refs = tune.references(ref, tune.data_utts(data))
    saved = (data / "emissions.json").is_file()
    if checkpoint is not None and saved:
        log.warn(f"--checkpoint is not used: {data} holds saved emissions (the model does not run)")

    with log.progress() as bar:
        task = bar.add_task("emissions" if saved else "model", total=len(refs))
        outputs, info = tune.load_outputs(exp, data, units, checkpoint=checkpoint, device=device,
                                          batch_size=batch_size, on_output=lambda: bar.advance(task, 1))
        grid = bar.add_task("grid", total=len(weights) * len(bonuses) * len(outputs))
        found = tune.search_grid(units, outputs, refs, lm, lm_weights=weights, word_bonuses=bonuses, beam=beam,
                                 backend=backend, lexicon=lexicon, extra_lexicon=extra_lexicon, jobs=jobs,
                                 on_progress=lambda n: bar.advance(grid, n))
    best = found.best
    path = tune.write_tuning(exp, found, lm=lm, ref=ref, data=data, beam=beam, lexicon=lexicon,
                             extra_lexicon=extra_lexicon,
                             checkpoint=info.get("checkpoint"), utterances=len(outputs))

    table = tune.grid_table(found.points, best, title=f"{len(outputs)} utterances of {data}, LM {lm}, beam {beam}")
    out = sys.stdout
    if out.isatty():
        from rich.console import Console

        Console(file=out).print(render_rich(table))
    else:
        out.write(render_plain(table) + "\n")
    out.write(f"best: lm_weight {best.lm_weight:g} word_bonus {best.word_bonus:g} "
              f"{counts_line('WER', best.counts)}\n")
    log.info(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``asrkit tune``."""
    app.command("tune", no_args_is_help=True)(tune_command)
