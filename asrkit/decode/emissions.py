"""Running a trained model over a feature store: batches by length, per-utterance outputs.

:func:`iter_outputs` is the one place where features meet the model at decode
time. It walks the store's utterances in chunks of consecutive utt-ids
(so results come out in the store's sorted order and can be streamed), sorts
each chunk by length into batches of ``batch_size`` utterances (little
padding), applies the CMVN the model was trained with, runs the model without
gradients and yields one :class:`ModelOutput` per utterance, in utt-id
order::

    for out in iter_outputs(model, store, cmvn="global", batch_size=16):
        out.utt, out.log_probs.shape          # (T', C) log-softmax of the logits, on the CPU

Greedy decoding, frame prediction and (later) the beam search with an LM all
consume these outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from asrkit.errors import DataError, UsageError

__all__ = ["ModelOutput", "iter_outputs", "length_batches", "resolve_device"]

#: How many batches of consecutive utterances are sorted by length together.
CHUNK_BATCHES = 32


@dataclass
class ModelOutput:
    """The model's output for one utterance.

    Attributes:
        utt: utterance id.
        log_probs: ``(T', C)`` float32 log-softmax over the classes, CPU.
        frames: input frames ``T``.
    """

    utt: str
    log_probs: Tensor
    frames: int

    @property
    def out_frames(self) -> int:
        return int(self.log_probs.shape[0])


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cpu``; ``cuda``/``cuda:N``
    (a :class:`UsageError` when CUDA is not available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
        return torch.device(device)
    raise UsageError(f"--device must be auto, cpu or cuda[:N], got '{device}'")


def length_batches(utts: Sequence[str], lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of ``utts`` grouped into batches of at most ``batch_size``
    utterances of similar length (longest first; ties keep the given order)."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    order = sorted(range(len(utts)), key=lambda i: -int(lengths[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(feats: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """List of ``(T_i, D)`` arrays -> zero-padded ``(B, T_max, D)`` and lengths ``(B,)``."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
    out = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1], dtype=torch.float32)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))
    return out, lengths


def iter_outputs(
    model: torch.nn.Module,
    store,
    *,
    cmvn: Optional[str] = None,
    norm_vars: bool = True,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    utts: Optional[Sequence[str]] = None,
    input_dim: Optional[int] = None,
    on_batch: Optional[Callable[[int], None]] = None,
) -> Iterator[ModelOutput]:
    """Yield the model's log-probabilities for every utterance, in utt-id order.

    Args:
        model: ``model(feats (B, T, D), lengths (B,)) -> (logits (B, T', C), out_lengths (B,))``,
            already on ``device`` and in eval mode.
        store: an :class:`asrkit.data.FeatureStore`.
        cmvn, norm_vars: the CMVN the model was trained with
            (``config["data"]["cmvn"]``, ``config["data"]["norm_vars"]``).
        batch_size: utterances per forward pass.
        utts: a subset of utt-ids (default: all, sorted).
        input_dim: the model's feature dimension, checked against the store
            before any work.
        on_batch: called with the number of utterances after each batch
            (progress bars).
    """
    keys = list(store.keys()) if utts is None else list(utts)
    if input_dim is not None and len(keys) and store.dim != input_dim:
        raise DataError(f"{store.path}: features are {store.dim}-dim but the model takes {input_dim}-dim "
                        f"(model.input_dim); featurize with the feature config the model was trained on")
    device = torch.device(device)
    chunk = max(1, batch_size) * CHUNK_BATCHES
    # no_grad, not inference_mode: inference tensors (and buffers a layer caches while
    # making them) could not be used by autograd later in the same process
    with torch.no_grad():
        for start in range(0, len(keys), chunk):
            part = keys[start:start + chunk]
            lens = [store.num_frames(u) for u in part]
            results: dict[str, ModelOutput] = {}
            for batch in length_batches(part, lens, batch_size):
                names = [part[i] for i in batch]
                feats, lengths = _pad([store.get(u, cmvn=cmvn, norm_vars=norm_vars) for u in names])  # (B, T, D), (B,)
                logits, out_lengths = model(feats.to(device), lengths.to(device))  # (B, T', C), (B,)
                log_probs = torch.log_softmax(logits.float(), dim=-1).cpu()  # (B, T', C)
                out_lengths = out_lengths.cpu().tolist()
                for b, u in enumerate(names):
                    n = int(out_lengths[b])
                    results[u] = ModelOutput(u, log_probs[b, :n].clone(), int(lengths[b]))
                if on_batch is not None:
                    on_batch(len(names))
            for u in part:
                yield results[u]
