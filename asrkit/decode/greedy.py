"""Greedy (best path) CTC decoding of model outputs into hypotheses.

    from asrkit.decode import load_exp, greedy_decode
    exp = load_exp("exp/ctc", checkpoint="best", device="cpu")
    for hyp in greedy_decode(exp, FeatureStore("feats/test"), batch_size=16):
        print(hyp.utt, hyp.text)

Per output frame the best class is taken, repeats are merged and blanks
(id 0) dropped (:func:`asrkit.nn.search.ctc_greedy`); the unit ids become
phones (phone models) or words (char/bpe models) through the exp dir's units.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional, Sequence

from asrkit.decode.emissions import ModelOutput, iter_outputs
from asrkit.decode.output import Hypothesis
from asrkit.nn.search import ctc_greedy

__all__ = ["greedy_hypothesis", "greedy_hypotheses", "greedy_decode"]


def greedy_hypothesis(out: ModelOutput, units, blank: int = 0) -> Hypothesis:
    """One utterance's greedy hypothesis from its ``(T', C)`` log-probabilities;
    ``units`` is a :class:`asrkit.data.units.UnitMap`."""
    ids, scores = ctc_greedy(out.log_probs, blank=blank)
    ids0 = ids[0]
    return Hypothesis(utt=out.utt, tokens=units.tokens(ids0), score=float(scores[0]), frames=out.frames,
                      out_frames=out.out_frames, units=units.symbols(ids0))


def greedy_hypotheses(outputs: Iterable[ModelOutput], units, blank: int = 0) -> Iterator[Hypothesis]:
    """:func:`greedy_hypothesis` of every output, in order."""
    for out in outputs:
        yield greedy_hypothesis(out, units, blank)


def greedy_decode(exp, store, *, batch_size: int = 16, utts: Optional[Sequence[str]] = None,
                  on_batch: Optional[Callable[[int], None]] = None,
                  max_frames: Optional[int] = None, warps: Sequence[float] = ()) -> Iterator[Hypothesis]:
    """Greedy hypotheses of every utterance of ``store`` (utt-id order) with
    the model of a loaded exp dir (:func:`asrkit.decode.exp.load_exp`); ``max_frames``: long
    utterances in pieces, ``warps``: test-time VTLP (:func:`asrkit.decode.emissions.iter_outputs`)."""
    outputs = iter_outputs(exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=batch_size,
                           device=exp.device, utts=utts, input_dim=exp.input_dim, on_batch=on_batch,
                           max_frames=max_frames, warps=warps)
    return greedy_hypotheses(outputs, exp.units, blank=exp.units.blank_id)
