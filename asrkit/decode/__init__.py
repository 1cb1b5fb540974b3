"""Decoding: from a trained exp dir and a feature store to hypotheses.

    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp, greedy_decode, write_hypotheses
    exp = load_exp("exp/ctc", checkpoint="best", device="auto")
    hyps = greedy_decode(exp, FeatureStore("feats/test"), batch_size=16)
    write_hypotheses(hyps, sys.stdout, "text")      # utt-id tokens..., pipes into `asrkit score`

Pieces (each usable alone):

- :mod:`asrkit.decode.exp`: :func:`load_exp` (model, config, units, CMVN, device);
- :mod:`asrkit.decode.emissions`: :func:`iter_outputs`, the model's per-utterance
  log-probabilities over a store, batched by length, in utt-id order; saved emissions
  (:func:`save_emissions` / :func:`load_emissions`);
- :mod:`asrkit.decode.greedy`: greedy CTC hypotheses;
- :mod:`asrkit.decode.backends`: which beam search runs (:func:`resolve_backend`) and its word list;
- :mod:`asrkit.decode.beam`: CTC beam search, with a word n-gram LM (flashlight's lexicon decoder,
  or pyctcdecode + kenlm) or without;
- worker processes of ``--jobs``: :mod:`asrkit.workers`;
- :mod:`asrkit.decode.flashlight`: the lexicon-constrained search (phone models -> words);
- :mod:`asrkit.decode.timing`: CTC frame paths, unit segments and token times (``--format ctm``);
- :mod:`asrkit.decode.align`: CTC forced alignment of transcripts (``asrkit align``);
- :mod:`asrkit.decode.attention`: attention models (las, transformer): batched greedy and beam
  search (:func:`attention_greedy`, :func:`attention_beam_search`, :class:`AttentionSearch`,
  :func:`attention_decode`), with the CTC prefix scorer of :mod:`asrkit.decode.ctc_prefix` and an
  LM behind :mod:`asrkit.decode.fusion`: word n-gram fusion (:mod:`asrkit.decode.word_lm`) or a
  neural LM on the model's units (:mod:`asrkit.decode.neural_lm`);
- :mod:`asrkit.decode.frame`: frame classifier predictions (text / Kaggle csv);
- :mod:`asrkit.decode.output`: :class:`Hypothesis` and the text/trn/jsonl writers.

Unit ids -> phones / words / labels is :class:`asrkit.data.units.UnitMap`
(re-exported here); LM weight tuning is :mod:`asrkit.pipeline.tune`.
"""
from __future__ import annotations

from asrkit.data.units import UnitMap, load_units
from asrkit.decode.attention import (
    AttentionHyp, AttentionSearch, attention_beam_search, attention_decode, attention_greedy,
)
from asrkit.decode.beam import BeamDecoder, beam_decode, beam_hypotheses
from asrkit.decode.emissions import ModelOutput, iter_outputs, length_batches, resolve_device
from asrkit.decode.exp import ATTENTION_TASKS, LoadedExp, load_exp
from asrkit.decode.frame import FramePrediction, predict_frames, write_frame_csv, write_frame_text
from asrkit.decode.greedy import greedy_decode, greedy_hypotheses, greedy_hypothesis
from asrkit.decode.output import FORMATS, WRITERS, Hypothesis, format_line, write_hypotheses

__all__ = [
    "ATTENTION_TASKS", "AttentionHyp", "AttentionSearch", "attention_beam_search", "attention_decode", "attention_greedy",
    "BeamDecoder", "beam_decode", "beam_hypotheses",
    "FORMATS", "WRITERS", "FramePrediction", "Hypothesis", "LoadedExp", "ModelOutput", "UnitMap",
    "format_line", "greedy_decode", "greedy_hypotheses", "greedy_hypothesis", "iter_outputs",
    "length_batches", "load_exp", "load_units", "predict_frames", "resolve_device", "write_frame_csv",
    "write_frame_text", "write_hypotheses",
]
