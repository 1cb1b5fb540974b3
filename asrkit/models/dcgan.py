"""DCGAN (Radford et al. 2015): a generator and a discriminator in one module (the gan task).

Generator: ``z (N, nz)`` as ``(N, nz, 1, 1)``, a ``ConvTranspose2d`` with a
``base x base`` kernel to ``(N, g * 2^(L-1), base, base)``, then ``L``
upsampling layers ``ConvTranspose2d(4, stride 2, padding 1)`` (each doubling
``H, W`` and halving the channels; BatchNorm2d + ReLU after every layer but
the last), ``Tanh`` out: ``(N, C, H, W)`` in [-1, 1], ``H = W = base * 2^L``.

Discriminator, the mirror: ``L`` strided ``Conv2d(4, stride 2, padding 1)``
(LeakyReLU 0.2; BatchNorm2d after all but the first), then a ``base x base``
``Conv2d`` to one logit per image: ``(N, C, H, W) -> (N,)``. With
``spectral_norm: true`` every discriminator convolution is spectrally
normalized (:func:`asrkit.nn.spectral_norm`) and the discriminator has no
BatchNorm (SN-GAN).

``layers`` (``L``): null picks the most upsampling layers that leave
``base = H / 2^L >= 4`` a whole number (64 -> 4 layers from 4x4, 32 -> 3, 28 -> 2 from 7x7).
Weights start as the paper's: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0.

Calls (the gan task's phases go through ``forward`` so that DDP sees them)::

    images = model(z)                          # (N, nz) -> (N, C, H, W), the generator
    real_logits, fake_logits = model(z, real)  # the discriminator's step: D(real), D(G(z)) with G held fixed
    fake_logits = model(z, mode="g")           # the generator's step: D(G(z))
    logits = model.discriminate(images)        # (N, C, H, W) -> (N,)
    images = model.sample(1000, seed=0)        # (1000, C, H, W) on the CPU, no gradients
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from asrkit.errors import ConfigError
from asrkit.nn import (
    BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Module, ReLU, Tanh, init, spectral_norm,
)

__all__ = ["DCGAN", "DEFAULTS", "REQUIRED", "build", "resolve_config"]

#: keys the task fills in from the images (num_classes: the class folders; the generator ignores it)
REQUIRED = ("type", "in_channels", "image_size")
DEFAULTS: dict[str, Any] = {
    "impl": "scratch",
    "num_classes": None,     # filled in by the trainer; unconditional: unused
    "nz": 64,                # noise dimension
    "g_channels": 64,        # the generator's last hidden width (doubling towards its input)
    "d_channels": 64,        # the discriminator's first width (doubling towards its output)
    "layers": None,          # upsampling layers; null: the most that leave a base of >= 4 pixels
    "spectral_norm": False,  # spectrally normalized discriminator convolutions, no discriminator BatchNorm
    # task settings (read by the gan task, not the layers)
    "loss": "bce",           # bce (non-saturating) | hinge
}
LOSSES = ("bce", "hinge")


def _auto_layers(size: int) -> int:
    layers = 0
    while size % 2 ** (layers + 1) == 0 and size // 2 ** (layers + 1) >= 4:
        layers += 1
    return layers


class _Generator(Module):
    def __init__(self, nz: int, out_channels: int, width: int, base: int, layers: int, *, impl: str) -> None:
        super().__init__(impl)
        chans = [width * 2 ** (layers - 1 - i) for i in range(layers)] + [out_channels]  # after each layer
        mods: list[torch.nn.Module] = [ConvTranspose2d(nz, chans[0], base, 1, 0, bias=False, impl=impl),
                                       BatchNorm2d(chans[0], impl=impl), ReLU(impl=impl)]
        for i in range(layers):
            last = i == layers - 1
            mods.append(ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=last, impl=impl))
            mods += [Tanh(impl=impl)] if last else [BatchNorm2d(chans[i + 1], impl=impl), ReLU(impl=impl)]
        self.net = torch.nn.Sequential(*mods)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])                # (N, nz) -> (N, C, H, W)


class _Discriminator(Module):
    def __init__(self, in_channels: int, width: int, base: int, layers: int, spectral: bool, *, impl: str) -> None:
        super().__init__(impl)
        mods: list[torch.nn.Module] = []
        cin = in_channels
        for i in range(layers):
            cout = width * 2 ** i
            conv = Conv2d(cin, cout, 4, 2, 1, bias=spectral or i == 0, impl=impl)
            mods.append(spectral_norm(conv) if spectral else conv)
            if i > 0 and not spectral:
                mods.append(BatchNorm2d(cout, impl=impl))
            mods.append(LeakyReLU(0.2, impl=impl))
            cin = cout
        head = Conv2d(cin, 1, base, 1, 0, impl=impl)
        mods.append(spectral_norm(head) if spectral else head)
        self.net = torch.nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(x.shape[0])             # (N, C, H, W) -> (N,)


class DCGAN(Module):
    """The generator (``self.generator``) and discriminator (``self.discriminator``) of a DCGAN."""

    def __init__(self, in_channels: int, image_size: int, nz: int = 64, g_channels: int = 64,
                 d_channels: int = 64, layers: int | None = None, spectral: bool = False, *,
                 impl: str = "scratch") -> None:
        super().__init__(impl)
        layers = _auto_layers(image_size) if layers is None else layers
        base = image_size // 2 ** layers
        self.in_channels, self.image_size, self.nz, self.layers, self.base = in_channels, image_size, nz, layers, base
        self.generator = _Generator(nz, in_channels, g_channels, base, layers, impl=impl)
        self.discriminator = _Discriminator(in_channels, d_channels, base, layers, spectral, impl=impl)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialization: N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales, zero biases."""
        for m in self.modules():
            if isinstance(m, (Conv2d, ConvTranspose2d)):
                w = m.weight_orig if hasattr(m, "weight_orig") else m.weight
                init.normal_(w, 0.0, 0.02)
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, BatchNorm2d):
                init.normal_(m.weight, 1.0, 0.02)
                init.zeros_(m.bias)

    def generate(self, z: Tensor) -> Tensor:
        """``(N, nz)`` noise -> ``(N, C, H, W)`` images in [-1, 1]."""
        return self.generator(z)

    def discriminate(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` images -> ``(N,)`` logits (real > 0)."""
        return self.discriminator(images)

    @torch.no_grad()
    def sample(self, num: int, seed: int = 0, batch_size: int = 256) -> Tensor:
        """``num`` images ``float32 (num, C, H, W)`` in [-1, 1] on the CPU, from noise of a
        generator seeded by ``seed`` (the same seed, the same images), ``batch_size`` at a time
        on the model's device."""
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(num, self.nz, generator=gen)                  # (num, nz)
        dev = next(self.parameters()).device
        if num < 1:
            raise ValueError(f"num must be >= 1, got {num}")
        return torch.cat([self.generator(z[i:i + batch_size].to(dev)).float().cpu()
                          for i in range(0, num, batch_size)])

    def forward(self, z: Tensor, real: Tensor | None = None, mode: str | None = None):
        """``model(z)``: images; ``model(z, real)`` (mode ``d``): ``(D(real), D(G(z)))`` with G held
        fixed (no graph through it); ``model(z, mode="g")``: ``D(G(z))``."""
        mode = mode or ("d" if real is not None else "sample")
        if mode == "sample":
            return self.generator(z)
        if mode == "g":
            return self.discriminator(self.generator(z))
        if mode != "d" or real is None:
            raise ValueError(f"mode must be 'sample', 'g' or 'd' (with real images), got {mode!r}")
        with torch.no_grad():
            fake = self.generator(z)
        return self.discriminator(real), self.discriminator(fake)


def resolve_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check a ``type: dcgan`` model section and return it with the defaults filled in;
    ConfigError naming the first bad key."""
    from asrkit.models.common import check_image_model_keys

    out = check_image_model_keys(cfg, "dcgan", REQUIRED, DEFAULTS, "gan")
    for key in ("in_channels", "nz", "g_channels", "d_channels"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"model.{key}: expected an integer >= 1, got {v!r}")
    size = out["image_size"]
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise ConfigError(f"model.image_size: a dcgan makes square images of at least 4 pixels, got {size!r}")
    out["image_size"] = size
    layers = out["layers"]
    if layers is None:
        layers = _auto_layers(size)
    elif isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ConfigError(f"model.layers: expected an integer >= 1 or null, got {layers!r}")
    if layers < 1 or size % 2 ** layers:
        raise ConfigError(f"model.layers: {size}-pixel images are not a whole base size times 2^{layers} "
                          f"(give images of 4 * 2^L pixels, e.g. 28, 32 or 64, or another model.layers)")
    out["layers"] = layers
    if not isinstance(out["spectral_norm"], bool):
        raise ConfigError(f"model.spectral_norm: expected true or false, got {out['spectral_norm']!r}")
    if out["loss"] not in LOSSES:
        raise ConfigError(f"model.loss: expected one of {', '.join(LOSSES)}, got {out['loss']!r}")
    return out


def build(cfg: Mapping[str, Any]) -> DCGAN:
    """The DCGAN of a resolved config."""
    return DCGAN(cfg["in_channels"], cfg["image_size"], cfg["nz"], cfg["g_channels"], cfg["d_channels"],
                 cfg["layers"], cfg["spectral_norm"], impl=cfg["impl"])
