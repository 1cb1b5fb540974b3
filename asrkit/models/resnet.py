"""ResNet-style face model: an image classifier whose penultimate layer is an identity embedding.

The course's face homework (11-785 HW2P2): N-way identity classification
trained on labelled faces, and open-set verification by the cosine
similarity of the embeddings of two faces never seen in training. Built from
:mod:`asrkit.nn` layers only (``impl`` swaps every one of them; one
state_dict serves both)::

    images (N, C_in, H, W)
      -> Conv3x3(stride stem_stride) -> BatchNorm2d -> ReLU                   stem
      -> stage 1..S: blocks[s] basic blocks of channels[s] (stage s > 1 starts with stride 2)
         basic block: x + Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN, then ReLU
                      (a 1x1 strided Conv + BN shortcut when the shape changes)
      -> AdaptiveAvgPool2d(1) -> (N, channels[-1])                              global pooling
      -> Dropout -> Linear -> BatchNorm1d -> (N, embed_dim)                    the embedding
      -> head -> logits (N, num_classes)

Heads (``head``): ``softmax`` (a Linear; the task adds label smoothing),
``arcface`` (:class:`asrkit.nn.MarginLinear` with the additive angular margin
``margin``) or ``cosface`` (additive cosine margin ``margin``); the margin
heads' logits are ``scale`` times cosines, with the margin only on the target
class and only when ``forward`` gets the labels (training).

``model(images, labels=None) -> logits`` and ``model.embed(images) -> (N,
embed_dim)`` (compare embeddings by cosine: :meth:`ResNet.embed` with
``normalize=True`` gives unit vectors). The last BatchNorm of every residual
branch starts at zero, so every block starts as the identity (Goyal et al.
2017), which lets a deep stack train from the first step.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from asrkit.errors import ConfigError
from asrkit.nn import (
    AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Linear, MarginLinear, Module, Normalize,
    ReLU, init,
)

__all__ = ["DEFAULTS", "HEADS", "REQUIRED", "BasicBlock", "ResNet", "build", "resolve_config"]

#: the heads a ResNet can end in
HEADS = ("softmax", "arcface", "cosface")
#: keys the image task fills in from the data
REQUIRED = ("type", "in_channels", "image_size", "num_classes")
#: every optional key and its default (sizes for 64x64 faces on a CPU)
DEFAULTS: dict[str, Any] = {
    "impl": "scratch",
    "channels": [32, 64, 128, 256],  # widths of the stages
    "blocks": [1, 1, 1, 1],          # basic blocks per stage
    "stem_stride": 2,                # 1 | 2: the first conv's stride (2 halves the image at once)
    "embed_dim": 128,                # the embedding verification compares
    "dropout": 0.0,                  # before the embedding layer
    "head": "arcface",               # softmax | arcface | cosface
    "scale": 30.0,                   # margin heads: logits = scale * cosine
    "margin": 0.3,                   # arcface: angle (radians); cosface: cosine
    # task settings (read by the face task, not the layers)
    "label_smoothing": 0.1,
}


def _conv3(cin: int, cout: int, stride: int, impl: str) -> Conv2d:
    return Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, impl=impl)


class BasicBlock(Module):
    """``(N, cin, H, W) -> (N, cout, H / stride, W / stride)``: ``relu(x' + bn2(conv2(relu(bn1(conv1(x))))))``,
    ``x'`` = ``x`` or its 1x1 strided projection (Conv + BN) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        self.conv1 = _conv3(cin, cout, stride, impl)
        self.bn1 = BatchNorm2d(cout, impl=impl)
        self.conv2 = _conv3(cout, cout, 1, impl)
        self.bn2 = BatchNorm2d(cout, impl=impl)
        init.zeros_(self.bn2.weight)                     # the block starts as the identity
        self.relu = ReLU(impl=impl)
        self.shortcut: torch.nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = torch.nn.Sequential(Conv2d(cin, cout, 1, stride=stride, bias=False, impl=impl),
                                                BatchNorm2d(cout, impl=impl))

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.conv1(x)))           # (N, cout, H', W')
        y = self.bn2(self.conv2(y))                      # (N, cout, H', W')
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(y + skip)


class ResNet(Module):
    """``forward(images (N, C_in, H, W), labels (N,) | None) -> logits (N, num_classes)``;
    ``embed(images) -> (N, embed_dim)``.

    Args:
        in_channels: image channels (1 grey, 3 RGB).
        image_size: ``(H, W)`` (or one int for square images): checked on every call.
        num_classes: identities (classes) of the training set.
        channels, blocks: stage widths and basic blocks per stage (same length).
        stem_stride: stride of the first conv (1 or 2).
        embed_dim: width of the embedding.
        dropout: dropout before the embedding layer.
        head: ``softmax``, ``arcface`` or ``cosface``.
        scale, margin: the margin heads' cosine scale and margin.
        impl: ``"scratch"`` or ``"native"`` for every layer.
    """

    def __init__(self, in_channels: int, image_size: int | Sequence[int], num_classes: int,
                 channels: Sequence[int] = (32, 64, 128, 256), blocks: Sequence[int] = (1, 1, 1, 1),
                 stem_stride: int = 2, embed_dim: int = 128, dropout: float = 0.0, head: str = "arcface",
                 scale: float = 30.0, margin: float = 0.3, *, impl: str = "scratch") -> None:
        super().__init__(impl)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.in_channels = in_channels
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.head_kind = head
        self.stem = torch.nn.Sequential(_conv3(in_channels, channels[0], stem_stride, impl),
                                        BatchNorm2d(channels[0], impl=impl), ReLU(impl=impl))
        layers: list[torch.nn.Module] = []
        width = channels[0]
        for s, (c, n) in enumerate(zip(channels, blocks)):
            for b in range(n):
                layers.append(BasicBlock(width, c, 2 if (s > 0 and b == 0) else 1, impl=impl))
                width = c
        self.stages = torch.nn.Sequential(*layers)
        self.pool = AdaptiveAvgPool2d(1, impl=impl)
        self.dropout = Dropout(dropout, impl=impl)
        self.embedding = Linear(width, embed_dim, bias=False, impl=impl)
        self.embed_bn = BatchNorm1d(embed_dim, impl=impl)
        self.normalize = Normalize(impl=impl)
        if head == "softmax":
            self.head: torch.nn.Module = Linear(embed_dim, num_classes, impl=impl)
        else:
            m_arc, m_cos = (margin, 0.0) if head == "arcface" else (0.0, margin)
            self.head = MarginLinear(embed_dim, num_classes, scale, m_arc, m_cos, impl=impl)

    def _check(self, images: Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != self.in_channels or tuple(images.shape[2:]) != self.image_size:
            raise ValueError(f"expected images (N, {self.in_channels}, {self.image_size[0]}, {self.image_size[1]}), "
                             f"got {tuple(images.shape)}")

    def embed(self, images: Tensor, normalize: bool = False) -> Tensor:
        """``images (N, C_in, H, W)`` (float, about [-1, 1]) -> embeddings ``(N, embed_dim)``
        (unit length with ``normalize``)."""
        self._check(images)
        x = self.stages(self.stem(images))               # (N, channels[-1], H', W')
        x = self.pool(x).flatten(1)                      # (N, channels[-1])
        e = self.embed_bn(self.embedding(self.dropout(x)))  # (N, embed_dim)
        return self.normalize(e) if normalize else e

    def classify(self, emb: Tensor, labels: Tensor | None = None) -> Tensor:
        """Embeddings ``(N, embed_dim)`` -> logits ``(N, num_classes)`` (the margin on ``labels``' classes)."""
        if self.head_kind == "softmax":
            return self.head(emb)
        return self.head(emb, labels)

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.classify(self.embed(images), labels)


# ------------------------------------------------------------------ config

def _positive_int(cfg: Mapping[str, Any], key: str, lo: int = 1) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"model.{key}: expected an integer >= {lo}, got {v!r}")
    return v


def _number(cfg: Mapping[str, Any], key: str, lo: float, hi: float, *, open_hi: bool = False) -> float:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v < hi if open_hi else lo <= v <= hi):
        raise ConfigError(f"model.{key}: expected a number in [{lo:g}, {hi:g}{')' if open_hi else ']'}, got {v!r}")
    return float(v)


def _int_list(cfg: Mapping[str, Any], key: str, lo: int) -> list[int]:
    v = cfg[key]
    if (not isinstance(v, (list, tuple)) or not v
            or any(isinstance(x, bool) or not isinstance(x, int) or x < lo for x in v)):
        raise ConfigError(f"model.{key}: expected a non-empty list of integers >= {lo}, got {v!r}")
    return list(v)


def resolve_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``type: resnet`` model section and return it with the defaults filled in;
    ConfigError naming the first bad key. ``image_size`` is ``H`` (square) or ``[H, W]``."""
    from asrkit.models.common import check_image_model_keys

    out = check_image_model_keys(cfg, "resnet", REQUIRED, DEFAULTS, "face")
    _positive_int(out, "in_channels")
    _positive_int(out, "num_classes", 2)
    given = out["image_size"]
    size = [given, given] if isinstance(given, int) and not isinstance(given, bool) else given
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 8 for s in size)):
        raise ConfigError(f"model.image_size: expected an integer or [H, W] of at least 8 pixels, got {given!r}")
    out["image_size"] = given if isinstance(given, int) else list(given)
    out["channels"] = _int_list(out, "channels", 1)
    out["blocks"] = _int_list(out, "blocks", 1)
    if len(out["blocks"]) != len(out["channels"]):
        raise ConfigError(f"model.blocks: {len(out['blocks'])} stages but model.channels has "
                          f"{len(out['channels'])}; give one block count per stage width")
    if out["stem_stride"] not in (1, 2) or isinstance(out["stem_stride"], bool):
        raise ConfigError(f"model.stem_stride: expected 1 or 2, got {out['stem_stride']!r}")
    _positive_int(out, "embed_dim")
    out["dropout"] = _number(out, "dropout", 0, 1, open_hi=True)
    if out["head"] not in HEADS:
        raise ConfigError(f"model.head: expected one of {', '.join(HEADS)}, got {out['head']!r}")
    out["scale"] = _number(out, "scale", 1e-3, 1e4)
    out["margin"] = _number(out, "margin", 0, 1.5)
    out["label_smoothing"] = _number(out, "label_smoothing", 0, 1, open_hi=True)
    shrink = out["stem_stride"] * 2 ** (len(out["channels"]) - 1)
    if min(size) < shrink:
        raise ConfigError(f"model.image_size: {given} is smaller than the network's total stride "
                          f"{shrink}; use fewer stages or model.stem_stride=1")
    return out


def build(cfg: Mapping[str, Any]) -> ResNet:
    """The ResNet of a resolved config."""
    return ResNet(cfg["in_channels"], cfg["image_size"], cfg["num_classes"], cfg["channels"], cfg["blocks"],
                  cfg["stem_stride"], cfg["embed_dim"], cfg["dropout"], cfg["head"], cfg["scale"], cfg["margin"],
                  impl=cfg["impl"])
