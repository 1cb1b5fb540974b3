"""Helpers shared by the models: input checks and padding masks."""
from __future__ import annotations

from torch import Tensor

from asrkit.errors import DataError
from asrkit.nn.conformer import lengths_to_padding_mask

__all__ = ["check_input", "check_image_model_keys", "lengths_to_padding_mask"]


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


def check_image_model_keys(cfg, kind: str, required: tuple, defaults: dict, filled_by: str) -> dict:
    """An image model's section (``type: kind``) with its defaults filled in: every
    key of ``required`` present (the ``filled_by`` task fills them in from the
    images), no unknown key, ``impl`` one of the implementations; ConfigError
    naming the first bad key. The model's own values are checked by its module."""
    from asrkit.errors import ConfigError
    from asrkit.nn import IMPLS

    for key in required:
        if key not in cfg:
            raise ConfigError(f"model.{key}: missing (required for a '{kind}' model; the {filled_by} task fills "
                              f"it in from the images)")
    known = set(required) | set(defaults)
    for key in cfg:
        if key not in known:
            raise ConfigError(f"model.{key}: unknown key for a '{kind}' model (known: {', '.join(sorted(known))})")
    out = {key: cfg[key] for key in required}
    out.update({key: cfg.get(key, default) for key, default in defaults.items()})
    if out["impl"] not in IMPLS:
        raise ConfigError(f"model.impl: expected one of {', '.join(IMPLS)}, got {out['impl']!r}")
    return out
