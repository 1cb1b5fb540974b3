"""``asrkit decode EXP FEATS``: hypotheses of a trained CTC or attention model on stdout.

Thin: parse options, load the exp dir, decode, write lines. Progress goes to
stderr, so ``asrkit decode ... | asrkit score REF -`` works. The exp dir's
``task`` picks the search: CTC (``ctc``: :mod:`asrkit.decode.beam`) or
attention (``las`` / ``transformer``: :mod:`asrkit.decode.attention`).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from asrkit import log
from asrkit.errors import UsageError

#: Padded frames per forward pass by default: length-sorted batches of about this many frames ran the
#: Asterisk test set's forward pass several times faster than 16-utterance batches on one CPU thread
#: (docs/benchmarks.md); --batch-size N switches to N utterances per pass (16 when given without a count).
DEFAULT_BATCH_FRAMES = 8000
_UTTS_PER_BATCH = 16


def decode_command(
    exp: Path = typer.Argument(
        ..., metavar="EXP", help="Exp dir written by 'asrkit train ctc' (or 'train las' / 'train transformer')."
    ),
    feats: Path = typer.Argument(
        ..., metavar="FEATS",
        help="Feature store to decode (asrkit featurize), or emissions saved by --save-emissions (CTC: the "
             "search alone, the model does not run)."),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", metavar="NAME|FILE", help="best, last, epoch-N (in EXP/checkpoints) or a .pt file."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format", metavar="text|trn|ctm|jsonl",
        help="text: 'utt-id tokens'; trn: 'tokens (utt-id)'; ctm: 'utt-id 1 start dur token' per token (times from "
             "the CTC frames x frame shift x subsampling); jsonl: {utt, hyp, score, frames, out_frames, units} "
             "(beam: + am_score, nbest). Default: text, jsonl with --nbest.",
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", metavar="N",
        help=f"Utterances per forward pass, instead of batches by frames (--batch-frames, default {DEFAULT_BATCH_FRAMES}).",
    ),
    device: str = typer.Option("auto", "--device", metavar="auto|cpu|cuda", help="Where the model runs."),
    impl: Optional[str] = typer.Option(
        None, "--impl", metavar="scratch|native", help="Layer implementation (default: the one it was trained with)."
    ),
    beam: Optional[int] = typer.Option(
        None, "--beam", metavar="N",
        help="CTC prefix beam search with N hypotheses (default: greedy; 20 when --lm or --nbest is given; "
             "at most 10000, a warning above 500).",
    ),
    lm: Optional[Path] = typer.Option(
        None, "--lm", metavar="LM.arpa|LM.bin|LM_EXP",
        help="Word n-gram LM (ARPA from 'asrkit lm build', or a kenlm binary; order >= 2) fused into the beam "
             "search. Phone models decode to words through their lexicon. Attention models (char/bpe) also take "
             "a neural LM exp dir (asrkit train lm) trained on their units (units.dir=EXP/units), fused token by "
             "token.",
    ),
    lm_weight: Optional[float] = typer.Option(
        None, "--lm-weight", metavar="A",
        help="Weight of the LM's (natural) log probability (with --lm; default: EXP/lm_tuning.yaml from "
             "'asrkit tune', else 0.5).",
    ),
    word_bonus: Optional[float] = typer.Option(
        None, "--word-bonus", metavar="B",
        help="Score added per word (with --lm; default: EXP/lm_tuning.yaml, else 1.5 for pyctcdecode, 0 for "
             "flashlight).",
    ),
    lexicon: Optional[Path] = typer.Option(
        None, "--lexicon", metavar="FILE",
        help="Words the LM search may produce, replacing the defaults (Kaldi lexicon.txt, CMU dict or one word "
             "per line). Phone models: their pronunciations (default: the model's lexicon, the shipped CMU dict). "
             "char/bpe: the vocabulary (default: the ARPA unigrams; needed with a kenlm binary).",
    ),
    extra_lexicon: Optional[Path] = typer.Option(
        None, "--extra-lexicon", metavar="FILE",
        help="Words added to the LM search (same formats as --lexicon). Phone models: pronunciations used before "
             "the model's lexicon, e.g. for LM words it lacks. char/bpe: words added to the ARPA unigrams.",
    ),
    backend: Optional[str] = typer.Option(
        None, "--backend", metavar="flashlight|pyctcdecode|plain",
        help="Beam search: flashlight (lexicon-constrained, word LM; the default with --lm for every unit kind: "
             "faster than pyctcdecode at equal or lower WER in benchmarks/decode_bench.py), pyctcdecode (open "
             "vocabulary, char/bpe), plain (no LM; the default without --lm).",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", metavar="J", help="Worker processes for the search."),
    nbest: Optional[int] = typer.Option(
        None, "--nbest", metavar="N",
        help="Also list the N best hypotheses with their scores (jsonl 'nbest' field; beam search).",
    ),
    save_emissions: Optional[Path] = typer.Option(
        None, "--save-emissions", metavar="DIR",
        help="Also save the model's log-probabilities (a feature store of (T', C) rows per utterance).",
    ),
    ctc_weight: Optional[float] = typer.Option(
        None, "--ctc-weight", metavar="W",
        help="Attention models: weight of the CTC prefix score in the beam search, 0..1 (the decoder gets 1 - W; "
             "default: EXP/lm_tuning.yaml, else 0.3 for a model with a CTC head, 0 for LAS).",
    ),
    length_bonus: Optional[float] = typer.Option(
        None, "--length-bonus", metavar="B",
        help="Attention models: score added per output token in the beam search (default: EXP/lm_tuning.yaml, "
             "else 0).",
    ),
    length_norm: bool = typer.Option(
        False, "--length-norm", help="Attention models: rank finished hypotheses by score / (tokens + 1).",
    ),
    max_len_ratio: Optional[float] = typer.Option(
        None, "--max-len-ratio", metavar="R",
        help="Attention models: at most R x encoder frames output tokens per utterance (default 2).",
    ),
    chunk_seconds: Optional[float] = typer.Option(
        None, "--chunk-seconds", metavar="S",
        help="Utterances longer than S seconds go through the model in pieces of at most S seconds cut at "
             "pauses (CTC: their log-probabilities joined before the search; attention: their hypotheses "
             "joined). Default 20; 0: whole utterances.",
    ),
    warps: Optional[str] = typer.Option(
        None, "--warps", metavar="A,B,...",
        help="CTC models on fbank features: test-time VTLP. The model runs once per warp factor on the features "
             "with their mel axis warped by it (1 = as they are) and the search reads the mean of the runs' "
             "log-probabilities, e.g. --warps 0.9,0.95,1,1.05,1.1 (that many forward passes).",
    ),
    # -- forward pass and loading: batches by frames, int8 weights, where the time goes --
    batch_frames: Optional[int] = typer.Option(
        None, "--batch-frames", metavar="N",
        help="Fill each forward pass with utterances of similar length up to N padded frames (batch size x its "
             f"longest utterance; default {DEFAULT_BATCH_FRAMES} unless --batch-size is given); same hypotheses, same "
             "order.",
    ),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", metavar="int8",
        help="CPU: the model's Linear and LSTM/GRU layers with int8 weights (torch's dynamic quantization; the "
             "model then runs torch's kernels, as --impl native). Faster, hypotheses close to float32's.",
    ),
    timing: bool = typer.Option(
        False, "--timing",
        help="At the end, one line on stderr with the seconds of each phase (start, model load, LM load, "
             "features, forward, search, output, total), utterances/s and real-time factor.",
    ),
    # -- the CTC search (decode-search)
    blank_skip: Optional[float] = typer.Option(
        None, "--blank-skip", metavar="P",
        help="CTC beam search: runs of frames whose blank probability is above P are merged into one frame "
             "before the search (faster; word times stay in the model's frames). 1: no merging. Default: "
             "asrkit.decode.beam.DEFAULT_BLANK_SKIP (docs/decode.md).",
    ),
    beam_threshold: Optional[float] = typer.Option(
        None, "--beam-threshold", metavar="T",
        help="flashlight LM search: drop hypotheses more than T (log) below the frame's best (default 12; "
             "smaller: faster, less accurate).",
    ),
    beam_size_token: Optional[int] = typer.Option(
        None, "--beam-size-token", metavar="N",
        help="flashlight LM search: try the N best units per frame (default 8; smaller: faster, less accurate).",
    ),
) -> None:
    """Decoding of a feature store, greedy or with a beam and a word LM.

    Writes 'utt-id tokens' lines on stdout, in utt-id order: phones for a
    phone model without --lm (score them against phone references), words for
    char/bpe models and for any model with --lm.

    Char/bpe model: asrkit decode exp/ctc feats/test | asrkit score data/test/text -

    Phone model: asrkit decode exp/ctc feats/test | asrkit score data/test/text.phones - --ignore sil

    With an LM (words): asrkit decode exp/ctc feats/test --beam 20 --lm exp/lm3.arpa | asrkit score data/test/text -

    Word times: asrkit decode exp/ctc feats/test --beam 20 --lm exp/lm3.arpa --format ctm > exp/ctc/hyp.ctm

    Search again without the model: asrkit decode exp/ctc feats/dev --save-emissions exp/ctc/emis_dev > /dev/null;
    asrkit decode exp/ctc exp/ctc/emis_dev --lm exp/lm3.arpa --lm-weight 1

    Attention model (las/transformer): asrkit decode exp/tf feats/test --beam 10 --ctc-weight 0.3 --lm exp/lm3.arpa

    With a neural LM on the attention model's units: asrkit decode exp/tf feats/test --beam 10 --lm exp/lm_char
    --lm-weight 0.3
    """
    from asrkit.decode import FORMATS, write_hypotheses
    from asrkit.decode import beam as beam_mod
    from asrkit.decode.backends import resolve_backend
    from asrkit.decode.beam import decode_emissions, decode_store
    from asrkit.decode.longform import chunk_frames
    from asrkit.decode.exp import ATTENTION_TASKS, exp_task

    if batch_size is not None and batch_frames is not None:
        raise UsageError("give --batch-size (utterances per forward pass) or --batch-frames (frames per pass), not both")
    if batch_size is None and batch_frames is None:
        batch_frames = DEFAULT_BATCH_FRAMES
    batch_size = _UTTS_PER_BATCH if batch_size is None else batch_size
    fast = _Forward(batch_frames, quantize, timing)  # checks them before anything loads
    task = exp_task(exp)  # None when EXP has no readable config: load_exp says why
    if task in ATTENTION_TASKS:
        _decode_attention(exp, feats, task, fast, checkpoint=checkpoint or "best", fmt=fmt, batch_size=batch_size, device=device,
                          impl=impl, beam=beam, lm=lm, lm_weight=lm_weight, nbest=nbest, ctc_weight=ctc_weight,
                          length_bonus=length_bonus, length_norm=length_norm, max_len_ratio=max_len_ratio,
                          chunk_seconds=chunk_seconds,
                          ctc_only={"--backend": backend is not None, "--lexicon": lexicon is not None,
                                    "--extra-lexicon": extra_lexicon is not None,
                                    "--save-emissions": save_emissions is not None,
                                    "--word-bonus": word_bonus is not None, "--jobs": jobs != 1,
                                    "--blank-skip": blank_skip is not None,
                                    "--beam-threshold": beam_threshold is not None,
                                    "--beam-size-token": beam_size_token is not None,
                                    "--warps": warps is not None})
        return
    if task is not None:
        for flag, given in (("--ctc-weight", ctc_weight is not None), ("--length-bonus", length_bonus is not None),
                            ("--length-norm", length_norm), ("--max-len-ratio", max_len_ratio is not None)):
            if given:
                raise UsageError(f"{flag} is for attention models (task las or transformer); {exp} is a {task} "
                                 f"model (task: {task})")
    if fmt is None:
        fmt = "jsonl" if nbest is not None else "text"
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if nbest is not None and fmt != "jsonl":
        raise UsageError(f"--nbest writes its hypotheses in the jsonl 'nbest' field; use --format jsonl, not {fmt}")
    if lm is None and (lm_weight is not None or word_bonus is not None):
        raise UsageError("--lm-weight and --word-bonus weigh an LM; give one with --lm LM.arpa")
    if lm is not None and lm.is_dir():
        raise UsageError(f"--lm {lm}: a folder (a neural LM exp dir); the beam search of a {task or 'CTC'} model "
                         f"fuses a word n-gram file (ARPA or kenlm binary); rescore its n-best lists with the neural "
                         f"LM instead: asrkit decode {exp} FEATS --nbest 20 > nbest.jsonl; asrkit rescore nbest.jsonl "
                         f"--lm {lm} --lm-weight A")
    if lm is None and lexicon is not None:
        raise UsageError("--lexicon lists the words of an LM search; give the LM with --lm")
    if lm is None and extra_lexicon is not None:
        raise UsageError("--extra-lexicon adds words to an LM search; give the LM with --lm")
    if beam is not None:
        beam_mod.check_beam(beam, warn=False)  # before the model loads; the decoder warns about a wide beam
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    chunk_frames(chunk_seconds, None)  # checks it before the model loads
    warp_factors = parse_warps(warps) if warps is not None else ()
    use_beam = beam is not None or lm is not None or nbest is not None or backend is not None
    if blank_skip is not None:
        from asrkit.decode.blank_skip import check_blank_skip

        check_blank_skip(blank_skip)
        if not use_beam:
            raise UsageError("--blank-skip merges frames before a beam search; give --beam N or --lm LM")
    beam_mod.check_pruning(beam_threshold, beam_size_token, with_lm=lm is not None)
    with fast.phase("model load"):
        saved, units, loaded, store = _open_input(exp, feats, checkpoint=checkpoint, device=device, impl=impl,
                                                  save_emissions=save_emissions, chunk_seconds=chunk_seconds,
                                                  quantize=quantize, warps=warps is not None)
    if use_beam:
        backend = resolve_backend(units.kind, lm is not None, backend)
    if lm is not None and (lm_weight is None or word_bonus is None):
        from asrkit.pipeline.tune import tuned_weights

        tuned = tuned_weights(exp, lm, backend)  # None (+ one warning) when tuned for another LM or backend
        if tuned is not None:
            lm_weight = tuned[0] if lm_weight is None else lm_weight
            word_bonus = tuned[1] if word_bonus is None else word_bonus
            log.info(f"LM weights from {exp}/lm_tuning.yaml")
    decoder = None
    if use_beam:
        with fast.phase("LM load" if lm is not None else "search setup"):
            decoder = beam_mod.BeamDecoder(
                units, beam=beam if beam is not None else beam_mod.DEFAULT_BEAM, lm=lm,
                lm_weight=lm_weight, word_bonus=word_bonus,  # None: the backend's default
                nbest=nbest, backend=backend, lexicon=lexicon, extra_lexicon=extra_lexicon, blank_skip=blank_skip,
                beam_threshold=beam_threshold, beam_size_token=beam_size_token)
        log.info(f"beam {decoder.beam}, {decoder.backend}" + (
            f", LM {lm} (weight {decoder.lm_weight}, word bonus {decoder.word_bonus})" if lm is not None
            else ", no LM") + (f", blank skip {decoder.blank_skip:g}" if decoder.blank_skip < 1 else "")
            + (f", pruning {beam_threshold if beam_threshold is not None else 'default'}/"
               f"{beam_size_token if beam_size_token is not None else 'default'}"
               if beam_threshold is not None or beam_size_token is not None else ""))
        if lm is not None and decoder.untuned:
            names = {"lm_weight": "LM weight", "word_bonus": "word bonus"}
            log.info(f"untuned {' and '.join(names[n] for n in decoder.untuned)}: the {decoder.backend} defaults; "
                     f"tune them on a dev set: asrkit tune {exp} DEV_EMISSIONS DEV_TEXT --lm {lm}")
    with log.progress() as bar:
        task = bar.add_task("decode", total=len(saved if saved is not None else store))
        try:  # greedy when decoder is None; NaN log-probs stop with one line either way
            with fast.decoding():
                if saved is not None:
                    hyps = decode_emissions(saved, units, decoder, on_hypothesis=lambda: bar.advance(task, 1),
                                            times=fmt in ("ctm", "jsonl"), jobs=jobs)
                else:
                    hyps = decode_store(loaded, store, decoder, batch_size=batch_size, save=save_emissions,
                                        on_hypothesis=lambda: bar.advance(task, 1), times=fmt in ("ctm", "jsonl"),
                                        jobs=jobs, max_frames=chunk_frames(chunk_seconds, store),
                                        batch_frames=batch_frames, clock=fast.clock, warps=warp_factors)
                write_hypotheses(hyps, sys.stdout, fmt, clock=fast.clock)
        finally:
            if decoder is not None:
                decoder.close()
    if save_emissions is not None:
        log.info(f"log-probabilities saved in {save_emissions}")
    fast.report(saved if saved is not None else store)


class _Forward:
    """The forward-pass and loading options of ``asrkit decode`` (--batch-frames, --quantize,
    --timing), checked before anything loads: the phases of the run on a stopwatch when --timing,
    the decoding loop under ``torch.inference_mode`` (the process only decodes)."""

    def __init__(self, batch_frames: Optional[int], quantize: Optional[str], timing: bool) -> None:
        from asrkit.decode.emissions import check_batch_frames
        from asrkit.decode.quantize import check_quantize
        from asrkit.decode.stopwatch import Stopwatch

        check_batch_frames(batch_frames)
        check_quantize(quantize)
        self.batch_frames, self.quantize = batch_frames, quantize
        self.clock = Stopwatch() if timing else None

    def phase(self, name: str):
        from contextlib import nullcontext

        return self.clock.phase(name) if self.clock is not None else nullcontext()

    @contextmanager
    def decoding(self):
        """The decoding loop: features, forward, search and output; what is not features, forward or
        output is the search's."""
        import time

        import torch

        t = time.perf_counter()
        try:
            with torch.inference_mode():
                yield
        finally:
            if self.clock is not None:
                s = self.clock.seconds
                rest = time.perf_counter() - t - sum(s.get(p, 0.0) for p in ("features", "forward", "output"))
                self.clock.add("search", max(0.0, rest))

    def report(self, source) -> None:
        """``source``: the feature store decoded, or the saved emissions searched (their frames are
        the model's output frames: ``subsampling`` source frames each)."""
        if self.clock is None:
            return
        from asrkit.decode.emissions import SavedEmissions

        if isinstance(source, SavedEmissions):
            store, per_frame = source.store, (source.frame_shift or 10.0) * source.subsampling
        else:
            store, per_frame = source, float((source.conf or {}).get("frame_shift", 10.0))
        frames = sum(store.num_frames(u) for u in store.keys())
        shift = per_frame / 1000.0
        log.console.print(self.clock.summary(len(store), frames * shift), highlight=False, markup=False)  # even with -q


def _open_input(exp: Path, feats: Path, *, checkpoint: Optional[str], device: str, impl: Optional[str],
                save_emissions: Optional[Path], chunk_seconds: Optional[float], quantize: Optional[str] = None,
                warps: bool = False):
    """``(saved emissions, units, None, None)`` when FEATS holds emissions saved by --save-emissions
    (the model is not loaded, the units come from EXP), else ``(None, units, loaded exp, feature store)``."""
    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp
    from asrkit.decode.emissions import is_emissions_store, open_saved_emissions

    if not is_emissions_store(feats):
        store = FeatureStore(feats)
        loaded = load_exp(exp, checkpoint=checkpoint or "best", device=device, impl=impl, task="ctc", quantize=quantize)
        return None, loaded.units, loaded, store
    from asrkit.pipeline.tune import exp_units

    if save_emissions is not None:
        raise UsageError(f"--save-emissions: {feats} already holds saved emissions (the model does not run)")
    if chunk_seconds is not None:
        raise UsageError(f"--chunk-seconds cuts utterances before the model; {feats} holds saved emissions "
                         f"(the model does not run)")
    if warps:
        raise UsageError(f"--warps warps the features before the model; {feats} holds saved emissions "
                         f"(the model does not run)")
    for flag, given in (("--checkpoint", checkpoint), ("--impl", impl), ("--quantize", quantize)):
        if given is not None:
            log.warn(f"{flag} is not used: {feats} holds saved emissions (the model does not run)")
    units = exp_units(exp)
    return open_saved_emissions(exp, feats, units), units, None, None


#: Why each CTC search option does not apply to an attention model.
_CTC_ONLY = {
    "--backend": "picks a CTC beam search; an attention model has its own (--beam N)",
    "--lexicon": "lists the words of a CTC LM search; an attention model spells its own words",
    "--extra-lexicon": "adds words to a CTC LM search; an attention model spells its own words",
    "--save-emissions": "saves CTC log-probabilities per frame; an attention model's decoder has none",
    "--word-bonus": "is the CTC LM search's; an attention model's beam search takes --length-bonus",
    "--jobs": "runs CTC searches in worker processes; an attention model searches whole batches in one "
              "(use --batch-size)",
    "--blank-skip": "merges frames before a CTC beam search; an attention model searches label by label",
    "--beam-threshold": "prunes the CTC flashlight LM search; an attention model's beam is --beam N",
    "--beam-size-token": "prunes the CTC flashlight LM search; an attention model's beam is --beam N",
    "--warps": "averages CTC log-probabilities over warped copies of the features; an attention model's search "
               "has none",
}


def parse_warps(text: str) -> tuple[float, ...]:
    """``--warps 0.9,0.95,1,1.05,1.1`` -> the checked warp factors (UsageError for anything else)."""
    from asrkit.decode.emissions import check_warps

    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--warps: want comma-separated warp factors such as 0.9,0.95,1,1.05,1.1, "
                         f"got {text!r}") from None
    return check_warps(values)


def _decode_attention(exp: Path, feats: Path, task: str, fast: _Forward, *, checkpoint: str, fmt: Optional[str],
                      batch_size: int, device: str, impl: Optional[str], beam: Optional[int], lm: Optional[Path],
                      lm_weight: Optional[float], nbest: Optional[int], ctc_weight: Optional[float],
                      length_bonus: Optional[float], length_norm: bool, max_len_ratio: Optional[float],
                      chunk_seconds: Optional[float], ctc_only: dict[str, bool]) -> None:
    """``asrkit decode`` of a las / transformer exp dir: greedy, or the beam search of
    :mod:`asrkit.decode.attention` when --beam, --ctc-weight, --lm, --length-bonus, --length-norm or
    --nbest is given."""
    from asrkit.data import FeatureStore
    from asrkit.decode import FORMATS, load_exp, write_hypotheses
    from asrkit.decode.attention import (
        DEFAULT_BEAM, DEFAULT_CTC_WEIGHT, DEFAULT_MAX_LEN_RATIO, AttentionSearch, attention_decode,
    )
    from asrkit.decode.beam import DEFAULT_LM_WEIGHT, check_beam
    from asrkit.decode.exp import ATTENTION_TASKS
    from asrkit.decode.longform import chunk_frames

    for flag, given in ctc_only.items():
        if given:
            raise UsageError(f"{flag} {_CTC_ONLY[flag]} ({exp} is an attention model, task: {task})")
    from asrkit.decode.emissions import is_emissions_store

    if is_emissions_store(feats):
        raise UsageError(f"{feats}: holds saved CTC emissions; an attention model ({exp}, task: {task}) decodes a "
                         f"feature store (its decoder needs the encoder's output)")
    if fmt is None:
        fmt = "jsonl" if nbest is not None else "text"
    if fmt == "ctm":
        raise UsageError("--format ctm needs frame times; attention models do not give them (use text, trn or jsonl)")
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(f for f in FORMATS if f != 'ctm')}, got '{fmt}'")
    if nbest is not None and fmt != "jsonl":
        raise UsageError(f"--nbest writes its hypotheses in the jsonl 'nbest' field; use --format jsonl, not {fmt}")
    if lm is None and lm_weight is not None:
        raise UsageError("--lm-weight weighs an LM; give one with --lm LM.arpa or --lm LM_EXP")
    if task == "las" and ctc_weight:
        raise UsageError(f"--ctc-weight: {exp} is a LAS model, which has no CTC head; drop --ctc-weight")
    if beam is not None:
        check_beam(beam, warn=False)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    chunk_frames(chunk_seconds, None)  # checks it before the model loads
    use_beam = beam is not None or any(x is not None for x in (lm, nbest, ctc_weight, length_bonus)) or length_norm
    store = FeatureStore(feats)
    with fast.phase("model load"):
        loaded = load_exp(exp, checkpoint=checkpoint, device=device, impl=impl, task=ATTENTION_TASKS,
                          quantize=fast.quantize)
    has_ctc = bool(getattr(loaded.model, "has_ctc", False))
    if ctc_weight and not has_ctc:
        raise UsageError(f"--ctc-weight: {exp}'s model has no CTC head; drop --ctc-weight")
    fusion_lm = None
    if use_beam:
        from asrkit.pipeline.tune import attention_tuned_weights

        tuned = attention_tuned_weights(exp, lm)  # None (+ one warning) when tuned with another LM
        if tuned is not None and (lm_weight is None or ctc_weight is None or length_bonus is None):
            lm_weight = tuned["lm_weight"] if lm_weight is None else lm_weight
            ctc_weight = (tuned["ctc_weight"] if has_ctc else 0.0) if ctc_weight is None else ctc_weight
            length_bonus = tuned["length_bonus"] if length_bonus is None else length_bonus
            log.info(f"search weights from {exp}/lm_tuning.yaml")
        if lm is not None:
            from asrkit.decode.fusion import open_fusion_lm

            # UsageError for phone units, for a neural LM on other units than the model's
            with fast.phase("LM load"):
                fusion_lm = open_fusion_lm(lm, loaded.units, device=loaded.device, impl=impl)
    search = AttentionSearch(
        beam=(beam if beam is not None else DEFAULT_BEAM) if use_beam else None,
        ctc_weight=(DEFAULT_CTC_WEIGHT if has_ctc and use_beam else 0.0) if ctc_weight is None else ctc_weight,
        lm=fusion_lm, lm_weight=(DEFAULT_LM_WEIGHT if lm_weight is None else lm_weight) if lm is not None else 0.0,
        length_bonus=0.0 if length_bonus is None else length_bonus, length_norm=length_norm, nbest=nbest,
        max_len_ratio=DEFAULT_MAX_LEN_RATIO if max_len_ratio is None else max_len_ratio)
    log.info(f"{task}: {search.describe()}")
    with log.progress() as bar:
        progress = bar.add_task("decode", total=len(store))
        try:
            with fast.decoding():
                hyps = attention_decode(loaded, store, search, batch_size=batch_size,
                                        on_hypothesis=lambda: bar.advance(progress, 1),
                                        max_frames=chunk_frames(chunk_seconds, store),
                                        batch_frames=fast.batch_frames, clock=fast.clock)
                write_hypotheses(hyps, sys.stdout, fmt, clock=fast.clock)
        finally:
            if fusion_lm is not None:
                fusion_lm.close()
    fast.report(store)


def register(app: typer.Typer) -> None:
    """Add ``asrkit decode``."""
    app.command("decode", no_args_is_help=True)(decode_command)
