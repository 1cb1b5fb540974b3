"""The attention map of one decoded utterance (``asrkit plot attention``).

    from asrkit.data import FeatureStore
    from asrkit.decode import load_exp
    from asrkit.plot.decoded import decode_attention
    loaded = load_exp("exp/las")
    got = decode_attention(loaded, FeatureStore("feats/dev"), "spk1-utt007")
    got.tokens, got.attention.shape, got.labels      # words, (U, S), one unit symbol per row

The utterance's features (with the CMVN the model was trained with) go through
the model's encoder, then a search over the decoder (greedy by default:
:func:`asrkit.decode.attention.attention_greedy`) returns the unit ids and the
attention used at each decoder step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from asrkit.decode.exp import ATTENTION_TASKS
from asrkit.errors import DataError, UsageError, quote

__all__ = ["ATTENTION_TASKS", "DecodedAttention", "check_attention_task", "check_utterance", "decode_attention"]


@dataclass
class DecodedAttention:
    """One utterance decoded by an attention model.

    Attributes:
        utt: utterance id.
        ids: the decoded unit ids, without the final end of sentence.
        labels: one label per attention row: the unit symbols of ``ids``.
        tokens: the hypothesis as output tokens (words; phones for a phone model).
        score: the search's log probability of the hypothesis.
        attention: ``(U, S)`` float32 attention of each decoder step over the
            utterance's S encoder frames.
        hit_max: True when the search stopped at the maximum length, not at
            an end of sentence.
    """

    utt: str
    ids: list[int]
    labels: list[str]
    tokens: list[str]
    score: float
    attention: np.ndarray
    hit_max: bool


def check_attention_task(exp: Any, config: dict) -> None:
    """Raise :class:`UsageError` (one line) when the exp dir's task has no attention decoder."""
    task = config.get("task")
    if task not in ATTENTION_TASKS:
        raise UsageError(f"{exp}: has no attention; it is a {task} model (task: {task}); attention maps are drawn "
                         f"for the models of 'asrkit train las' and 'asrkit train transformer'")


def check_utterance(store: Any, utt: str) -> None:
    """Raise :class:`UsageError` (one line naming the store) when ``utt`` is not in ``store``."""
    if utt not in store:
        keys = store.keys()
        first = f"; the first is {quote(keys[0])}" if keys else ""
        raise UsageError(f"{store.path}: has no utterance {quote(utt)} ({len(keys)} utterances{first})")


def decode_attention(loaded: Any, store: Any, utt: str, *, search: Optional[Any] = None) -> DecodedAttention:
    """Decode utterance ``utt`` of ``store`` with an attention model and keep its attention.

    Args:
        loaded: a :class:`asrkit.decode.LoadedExp` of an attention task (its
            model has ``encode`` and the decoder's ``step``).
        store: the :class:`asrkit.data.FeatureStore` that holds ``utt``.
        utt: the utterance id.
        search: an :class:`asrkit.decode.attention.AttentionSearch` (default:
            greedy, the decoder's default maximum length); its best hypothesis is drawn.

    Raises:
        UsageError: ``utt`` is not in the store.
        DataError: features of another dimension than the model's; NaN attention.
    """
    import torch

    from asrkit.decode.attention import AttentionSearch
    from asrkit.decode.emissions import load_batch

    check_utterance(store, utt)
    if loaded.input_dim is not None and store.dim != loaded.input_dim:
        raise DataError(f"{store.path}: features are {store.dim}-dim but the model takes {loaded.input_dim}-dim "
                        f"(model.input_dim); featurize with the feature config the model was trained on")
    search = AttentionSearch() if search is None else search
    search.check_model(loaded.model)
    x, lengths = load_batch(store, [utt], cmvn=loaded.cmvn, norm_vars=loaded.norm_vars)  # (1, T, D), (1,)
    with torch.no_grad():
        enc = loaded.model.encode(x.to(loaded.device), lengths.to(loaded.device))
        best = search.run(loaded.model, enc)[0][0]
    ids = [int(i) for i in best.ids]
    att = best.attention.detach().float().cpu().numpy()  # (U, S)
    if att.shape[0] == 0:
        raise DataError(f"utterance {utt}: the model decoded nothing and gave no attention to draw")
    if not np.isfinite(att).all():
        raise DataError(f"utterance {utt}: the model's attention is NaN or inf; the checkpoint or the features "
                        f"are broken (check them for NaN/inf)")
    return DecodedAttention(utt=utt, ids=ids, labels=loaded.units.symbols(ids), tokens=loaded.units.tokens(ids),
                            score=float(best.score), attention=att, hit_max=bool(best.hit_max_len))
