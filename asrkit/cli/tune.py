"""``asrkit tune EXP DATA REF --lm LM``: LM weight / word bonus grid search on a dev set.

Thin: parse options, call :mod:`asrkit.pipeline.tune`, print the grid. The
table and the best point go to stdout, progress to stderr; the best values
are written to ``EXP/lm_tuning.yaml`` for ``asrkit decode``. An attention
model (task las / transformer) is tuned over LM weight x CTC weight x length
bonus instead, on a feature store (the encoder runs once). When DATA is an
n-best jsonl file (``asrkit decode --nbest N``) the grid is LM weight x length
bonus of ``asrkit rescore``, written to ``EXP/rescore_tuning.yaml``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import InputError, UsageError


def tune_command(
    exp: Path = typer.Argument(
        ..., metavar="EXP",
        help="Exp dir of a CTC model (asrkit train ctc) or an attention model (las, transformer); n-best "
             "rescoring: the folder that gets rescore_tuning.yaml (e.g. the exp dir that decoded it)."
    ),
    data: Path = typer.Argument(
        ..., metavar="DATA",
        help="Saved emissions (asrkit decode --save-emissions DIR), a feature store (the model runs once), or an "
             "n-best jsonl file (asrkit decode --nbest N) to tune 'asrkit rescore'.",
    ),
    ref: Path = typer.Argument(..., metavar="REF", help="Reference text of DATA (Kaldi text: 'utt-id words')."),
    lm: Optional[Path] = typer.Option(
        None, "--lm", metavar="LM.arpa|LM.bin|LM_EXP",
        help="Word n-gram LM (ARPA or kenlm binary, order >= 2), as in decode (required for a CTC model); "
             "attention models: also a neural LM exp dir on the model's units, as in 'asrkit decode'; n-best "
             "rescoring: also a neural LM exp dir, as in 'asrkit rescore'.",
    ),
    lm_weights: Optional[str] = typer.Option(
        None, "--lm-weights", metavar="SPEC",
        help="LM weights to try: a comma list (0.3,0.5,1) or START:STOP:STEP, stop included "
             "(default 0:2:0.25; attention models 0:1:0.25; n-best rescoring 0:2:0.1).",
    ),
    word_bonuses: Optional[str] = typer.Option(
        None, "--word-bonuses", metavar="SPEC",
        help="Word bonuses to try, same forms (default -3:3:1 for flashlight, -2:4:1 for pyctcdecode).",
    ),
    beam: Optional[int] = typer.Option(
        None, "--beam", metavar="N", help="Beam width of every search (default 20; attention models 10)."
    ),
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
    ctc_weights: Optional[str] = typer.Option(
        None, "--ctc-weights", metavar="SPEC",
        help="Attention models: CTC weights to try, 0..1 (default 0.1:0.5:0.2 with a CTC head, 0 for LAS).",
    ),
    length_bonuses: Optional[str] = typer.Option(
        None, "--length-bonuses", metavar="SPEC",
        help="Attention models: length bonuses (per token) to try (default 0:1:0.5); n-best rescoring: per word "
             "(default -1:3:0.5).",
    ),
    length_norm: bool = typer.Option(
        False, "--length-norm", help="Attention models: rank finished hypotheses by score / (tokens + 1).",
    ),
    max_len_ratio: Optional[float] = typer.Option(
        None, "--max-len-ratio", metavar="R", help="Attention models: at most R x encoder frames tokens (default 2).",
    ),
    chunk_seconds: Optional[float] = typer.Option(
        None, "--chunk-seconds", metavar="S",
        help="With a feature store: utterances longer than S seconds in pieces cut at pauses, as 'asrkit decode "
             "--chunk-seconds' (default 20; 0: whole utterances).",
    ),
    decoder_lm_weight: Optional[float] = typer.Option(
        None, "--decoder-lm-weight", metavar="W",
        help="N-best rescoring of an attention decode with --lm: the --lm-weight that decode used (as for "
             "'asrkit rescore').",
    ),
    blank_skip: Optional[float] = typer.Option(
        None, "--blank-skip", metavar="P",
        help="CTC models: merge runs of frames whose blank probability is above P before every search, as "
             "'asrkit decode --blank-skip' (default: the same as decode's).",
    ),
    beam_threshold: Optional[float] = typer.Option(
        None, "--beam-threshold", metavar="T",
        help="flashlight LM search: its pruning threshold, as 'asrkit decode --beam-threshold' (default 12).",
    ),
    beam_size_token: Optional[int] = typer.Option(
        None, "--beam-size-token", metavar="N",
        help="flashlight LM search: units tried per frame, as 'asrkit decode --beam-size-token' (default 8).",
    ),
) -> None:
    """Pick the LM weight and word bonus with the lowest WER on a dev set.

    Every grid point reruns the beam search over the model's log-probabilities
    (computed once) and scores it against REF; the grid goes to stdout, the
    best values to EXP/lm_tuning.yaml, which 'asrkit decode --lm LM' then uses
    when --lm-weight/--word-bonus are not given.

    Example: asrkit decode exp/ctc feats/dev --save-emissions exp/ctc/emis_dev > /dev/null &&
    asrkit tune exp/ctc exp/ctc/emis_dev data/dev/text --lm exp/lm3.arpa --jobs 4

    Attention model: asrkit tune exp/tf feats/dev data/dev/text --lm exp/lm3.arpa --ctc-weights 0.2,0.3,0.5
    (or --lm exp/lm_char, a neural LM trained on the model's units)

    N-best rescoring (DATA: the jsonl of 'asrkit decode --nbest N'): LM
    weight x length bonus of 'asrkit rescore', the best to
    EXP/rescore_tuning.yaml: asrkit tune exp/tf nbest_dev.jsonl data/dev/text --lm exp/lm_lstm
    """
    from asrkit.decode.backends import BACKENDS, resolve_backend
    from asrkit.decode.beam import check_beam, check_pruning
    from asrkit.decode.exp import ATTENTION_TASKS, exp_task
    from asrkit.decode.longform import chunk_frames
    from asrkit.pipeline import tune

    if data.is_file() or data.suffix == ".jsonl":
        _tune_rescore(exp, data, ref, lm=lm, lm_weights=lm_weights, length_bonuses=length_bonuses,
                      decoder_lm_weight=decoder_lm_weight, device=device,
                      search_only={"--word-bonuses": word_bonuses is not None, "--beam": beam is not None,
                                   "--backend": backend is not None, "--lexicon": lexicon is not None,
                                   "--extra-lexicon": extra_lexicon is not None,
                                   "--checkpoint": checkpoint is not None, "--jobs": jobs != 1,
                                   "--batch-size": batch_size != 16, "--ctc-weights": ctc_weights is not None,
                                   "--length-norm": length_norm, "--max-len-ratio": max_len_ratio is not None,
                                   "--chunk-seconds": chunk_seconds is not None,
                                   "--blank-skip": blank_skip is not None,
                                   "--beam-threshold": beam_threshold is not None,
                                   "--beam-size-token": beam_size_token is not None})
        return
    if decoder_lm_weight is not None:
        raise UsageError("--decoder-lm-weight is for n-best rescoring (DATA an n-best jsonl file); "
                         f"{data} is not a file")
    task = exp_task(exp)
    if task in ATTENTION_TASKS:
        _tune_attention(exp, data, ref, task, lm=lm, lm_weights=lm_weights, ctc_weights=ctc_weights,
                        length_bonuses=length_bonuses, beam=beam, length_norm=length_norm,
                        max_len_ratio=max_len_ratio, checkpoint=checkpoint, device=device, batch_size=batch_size,
                        chunk_seconds=chunk_seconds, ctc_only={"--word-bonuses": word_bonuses is not None, "--backend": backend is not None,
                                  "--lexicon": lexicon is not None, "--extra-lexicon": extra_lexicon is not None,
                                  "--jobs": jobs != 1, "--blank-skip": blank_skip is not None,
                                  "--beam-threshold": beam_threshold is not None,
                                  "--beam-size-token": beam_size_token is not None})
        return
    if task is not None:
        for flag, given in (("--ctc-weights", ctc_weights is not None),
                            ("--length-bonuses", length_bonuses is not None),
                            ("--length-norm", length_norm), ("--max-len-ratio", max_len_ratio is not None)):
            if given:
                raise UsageError(f"{flag} is for attention models (task las or transformer); {exp} is a {task} "
                                 f"model (task: {task})")
    if lm is None:
        raise UsageError("Missing option '--lm': a CTC model's tuning weighs a word LM (--lm LM.arpa)")
    if lm.is_dir():
        raise UsageError(f"--lm {lm}: a folder (a neural LM exp dir); a CTC model's beam search fuses a word "
                         f"n-gram file (ARPA or kenlm binary); tune the rescoring of its n-best lists instead: "
                         f"asrkit tune {exp} NBEST.jsonl {ref} --lm {lm}")
    if beam is None:
        beam = 20
    # -- usage (exit 2) before any work
    default_w, default_b = tune.default_grids(backend)
    weights = tune.parse_grid(lm_weights if lm_weights is not None else default_w, "--lm-weights", minimum=0.0)
    bonuses = tune.parse_grid(word_bonuses if word_bonuses is not None else default_b, "--word-bonuses")
    for name, value in (("--jobs", jobs), ("--batch-size", batch_size)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    chunk_frames(chunk_seconds)  # checks it
    check_beam(beam, warn=False)  # the decoder warns about a wide beam once it is built
    if blank_skip is not None:
        from asrkit.decode.blank_skip import check_blank_skip

        check_blank_skip(blank_skip)
    if backend is not None and backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    check_pruning(beam_threshold, beam_size_token, backend=backend)
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
                                          batch_size=batch_size, on_output=lambda: bar.advance(task, 1),
                                          chunk_seconds=chunk_seconds)
        grid = bar.add_task("grid", total=len(weights) * len(bonuses) * len(outputs))
        found = tune.search_grid(units, outputs, refs, lm, lm_weights=weights, word_bonuses=bonuses, beam=beam,
                                 backend=backend, lexicon=lexicon, extra_lexicon=extra_lexicon, jobs=jobs,
                                 on_progress=lambda n: bar.advance(grid, n), blank_skip=blank_skip,
                                 pruning={"beam_threshold": beam_threshold, "beam_size_token": beam_size_token})
    best = found.best
    path = tune.write_tuning(exp, found, lm=lm, ref=ref, data=data, beam=beam, lexicon=lexicon,
                             extra_lexicon=extra_lexicon,
                             checkpoint=info.get("checkpoint"), utterances=len(outputs))

    table = tune.grid_table(found.points, best, title=f"{len(outputs)} utterances of {data}, LM {lm}, beam {beam}")
    _print_result(table, f"lm_weight {best.lm_weight:g} word_bonus {best.word_bonus:g}", best.counts, path)


_CTC_ONLY = {
    "--word-bonuses": "are the CTC LM search's; an attention model's search takes --length-bonuses",
    "--backend": "picks a CTC beam search; an attention model has its own",
    "--lexicon": "lists the words of a CTC LM search; an attention model spells its own words",
    "--extra-lexicon": "adds words to a CTC LM search; an attention model spells its own words",
    "--jobs": "spreads CTC grid points over worker processes; an attention model's grid runs in one",
    "--blank-skip": "merges frames before a CTC beam search; an attention model searches label by label",
    "--beam-threshold": "prunes the CTC flashlight LM search; an attention model's beam is --beam N",
    "--beam-size-token": "prunes the CTC flashlight LM search; an attention model's beam is --beam N",
}


def _tune_attention(exp: Path, data: Path, ref: Path, task: str, *, lm: Optional[Path], lm_weights: Optional[str],
                    ctc_weights: Optional[str], length_bonuses: Optional[str], beam: Optional[int],
                    length_norm: bool, max_len_ratio: Optional[float], checkpoint: Optional[str], device: str,
                    batch_size: int, chunk_seconds: Optional[float], ctc_only: dict[str, bool]) -> None:
    """``asrkit tune`` of a las / transformer exp dir: LM weight x CTC weight x length bonus."""
    from asrkit.data import FeatureStore
    from asrkit.decode.attention import DEFAULT_BEAM, DEFAULT_MAX_LEN_RATIO, check_max_len_ratio, encode_store
    from asrkit.decode.beam import check_beam
    from asrkit.decode.exp import ATTENTION_TASKS, load_exp
    from asrkit.decode.longform import chunk_frames
    from asrkit.pipeline import tune

    # -- usage (exit 2) before any work
    for flag, given in ctc_only.items():
        if given:
            raise UsageError(f"{flag} {_CTC_ONLY[flag]} ({exp} is an attention model, task: {task})")
    if lm is None and lm_weights is not None:
        raise UsageError("--lm-weights weigh an LM; give one with --lm LM.arpa or --lm LM_EXP")
    grids = tune.ATTENTION_GRIDS
    weights = tune.parse_grid(lm_weights or grids["lm_weights"], "--lm-weights", minimum=0.0) if lm else [0.0]
    ctcs = tune.parse_grid(ctc_weights or (grids["ctc_weights"] if task != "las" else "0"), "--ctc-weights",
                           minimum=0.0)
    if task == "las" and ctcs[-1] > 0:
        raise UsageError(f"--ctc-weights: {exp} is a LAS model, which has no CTC head; drop --ctc-weights")
    if ctcs[-1] > 1.0:
        raise UsageError(f"--ctc-weights {ctc_weights}: values must be <= 1, got {ctcs[-1]:g}")
    bonuses = tune.parse_grid(length_bonuses or grids["length_bonuses"], "--length-bonuses")
    beam = DEFAULT_BEAM if beam is None else beam
    check_beam(beam, warn=False)
    ratio = DEFAULT_MAX_LEN_RATIO if max_len_ratio is None else max_len_ratio
    check_max_len_ratio(ratio)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    chunk_frames(chunk_seconds)  # checks it
    # -- inputs (exit 1)
    if lm is not None and not lm.exists():
        raise InputError(f"{lm}: no such file or folder (--lm: an ARPA file, a kenlm binary or a neural LM exp dir)")
    if not ref.is_file():
        raise InputError(f"{ref}: no such file (REF)" if not ref.exists() else f"{ref}: is not a file")
    if (data / "emissions.json").is_file():
        raise InputError(f"{data}: holds saved CTC emissions; an attention model is tuned on a feature store "
                         f"(its encoder runs once)")
    refs = tune.references(ref, tune.data_utts(data))
    store = FeatureStore(data)
    loaded = load_exp(exp, checkpoint=checkpoint or "best", device=device, task=ATTENTION_TASKS)
    if max(ctcs) > 0 and not getattr(loaded.model, "has_ctc", False):
        raise UsageError(f"--ctc-weights: {exp}'s model has no CTC head; give --ctc-weights 0")
    with log.progress() as bar:
        enc_task = bar.add_task("encoder", total=len(refs))
        batches = encode_store(loaded, store, batch_size=batch_size, on_batch=lambda n: bar.advance(enc_task, n),
                               max_frames=chunk_frames(chunk_seconds, store))
        grid = bar.add_task("grid", total=len(weights) * len(ctcs) * len(bonuses) * len(refs))
        points = tune.attention_search_grid(loaded, batches, refs, lm=lm, lm_weights=weights, ctc_weights=ctcs,
                                            length_bonuses=bonuses, beam=beam, length_norm=length_norm,
                                            max_len_ratio=ratio, on_progress=lambda n: bar.advance(grid, n))
    best = tune.best_attention_point(points)
    path = tune.write_attention_tuning(exp, points, lm=lm, ref=ref, data=data, beam=beam, length_norm=length_norm,
                                       max_len_ratio=ratio, checkpoint=str(loaded.checkpoint), utterances=len(refs))
    title = f"{len(refs)} utterances of {data}, " + (f"LM {lm}, " if lm else "no LM, ") + f"beam {beam}"
    table = tune.attention_grid_table(points, best, title=title)
    _print_result(table, f"lm_weight {best.lm_weight:g} ctc_weight {best.ctc_weight:g} "
                         f"length_bonus {best.length_bonus:g}", best.counts, path)


def _tune_rescore(exp: Path, nbest: Path, ref: Path, *, lm: Optional[Path], lm_weights: Optional[str],
                  length_bonuses: Optional[str], decoder_lm_weight: Optional[float], device: str,
                  search_only: dict[str, bool]) -> None:
    """``asrkit tune EXP NBEST.jsonl REF --lm LM``: LM weight x length bonus of ``asrkit rescore``."""
    import math

    from asrkit.cli.rescore import lm_device
    from asrkit.lm.scorer import open_sentence_lm
    from asrkit.pipeline import tune
    from asrkit.pipeline.rescore import read_nbest, score_candidates

    # -- usage (exit 2) before any work
    for flag, given in search_only.items():
        if given:
            raise UsageError(f"{flag} sets a decoder's search; {nbest} is an n-best file, which is only re-ranked "
                             f"(tune the search on a feature store or saved emissions)")
    if lm is None:
        raise UsageError("Missing option '--lm': n-best rescoring weighs an LM (--lm LM.arpa or an LM exp dir)")
    grids = tune.RESCORE_GRIDS
    weights = tune.parse_grid(lm_weights or grids["lm_weights"], "--lm-weights", minimum=0.0)
    bonuses = tune.parse_grid(length_bonuses or grids["length_bonuses"], "--length-bonuses")
    if decoder_lm_weight is not None and (not math.isfinite(decoder_lm_weight) or decoder_lm_weight < 0):
        raise UsageError(f"--decoder-lm-weight must be a finite number >= 0, got {decoder_lm_weight:g}")
    # -- inputs (exit 1)
    if not exp.is_dir():
        raise InputError(f"{exp}: no such folder (EXP: where {tune.RESCORE_TUNING_FILE} goes)")
    if not ref.is_file():
        raise InputError(f"{ref}: no such file (REF)" if not ref.exists() else f"{ref}: is not a file")
    utts = list(read_nbest(nbest, decoder_lm_weight))
    refs = tune.references(ref, [u.utt for u in utts])
    scorer = open_sentence_lm(lm, device=lm_device(lm, device))
    hypotheses = sum(len(u.candidates) for u in utts)
    log.info(f"scoring {hypotheses} hypotheses of {len(utts)} utterances with LM {scorer.name}")
    score_candidates(utts, scorer)
    with log.progress() as bar:
        grid = bar.add_task("grid", total=len(weights) * len(bonuses) * len(utts))
        points = tune.rescore_search_grid(utts, refs, lm_weights=weights, length_bonuses=bonuses,
                                          on_progress=lambda n: bar.advance(grid, n))
    best = tune.best_rescore_point(points)
    path = tune.write_rescore_tuning(exp, points, lm=lm, nbest=nbest, ref=ref, decoder_lm_weight=decoder_lm_weight,
                                     utterances=len(utts), hypotheses=hypotheses)
    table = tune.rescore_grid_table(points, best, title=f"{len(utts)} utterances of {nbest} ({hypotheses} "
                                                         f"hypotheses), LM {lm}")
    _print_result(table, f"lm_weight {best.lm_weight:g} length_bonus {best.length_bonus:g}", best.counts, path)


def _print_result(table, best: str, counts, path) -> None:
    """The grid table on stdout (rich on a terminal, plain text in a pipe), then the ``best:`` line."""
    from asrkit.score.report import counts_line, render_plain, render_rich

    out = sys.stdout
    if out.isatty():
        from rich.console import Console

        Console(file=out).print(render_rich(table))
    else:
        out.write(render_plain(table) + "\n")
    out.write(f"best: {best} {counts_line('WER', counts)}\n")
    log.info(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``asrkit tune``."""
    app.command("tune", no_args_is_help=True)(tune_command)
