"""Helpers shared by the models: input checks and padding masks."""
from __future__ import annotations

from torch import Tensor

from asrkit.errors import DataError
from asrkit.nn.conformer import lengths_to_padding_mask

__all__ = ["check_input", "lengths_to_padding_mask"]


def check_input(feats: Tensor, lengths: Tensor, input_dim: int) -> None:
    """Shapes every model expects; a feature-dimension mismatch is a user error."""
    if feats.dim() != 3:
        raise ValueError(f"feats must be (B, T, D), got shape {tuple(feats.shape)}")
    if feats.shape[-1] != input_dim:
        raise DataError(f"the model takes {input_dim}-dim features (model.input_dim) but got "
                        f"{feats.shape[-1]}-dim ones; use features made with the config the model "
                        f"was trained on")
    if lengths.dim() != 1 or lengths.numel() != feats.shape[0]:
        raise ValueError(f"lengths must be ({feats.shape[0]},), got shape {tuple(lengths.shape)}")
    if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > feats.shape[1]):
        raise ValueError(f"lengths must be in [1, {feats.shape[1]}], got min {int(lengths.min())} "
                         f"max {int(lengths.max())}")
