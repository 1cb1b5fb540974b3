"""Spectral normalization of a layer's weight: :func:`spectral_norm` / :func:`remove_spectral_norm`.

The same contract as ``torch.nn.utils.spectral_norm`` (and the same
state_dict: ``weight_orig`` the parameter, ``weight_u (h,)`` / ``weight_v
(w,)`` the power-iteration buffers, so a torch twin's state_dict loads
unchanged). Before each forward a hook sets ``module.weight = weight_orig /
sigma``; in training mode it first refines ``u, v`` by ``n_power_iterations``
steps. The layer's own ``impl`` picks the kernel:
:mod:`asrkit.nn.functional.spectral` (scratch, hand-written backward) or
torch's autograd over the same formula (native)::

    d = spectral_norm(Conv2d(64, 128, 4, 2, 1))   # d.weight_orig, d.weight_u, d.weight_v
"""
from __future__ import annotations

from typing import Any

import torch

from asrkit.nn.functional import spectral as S

__all__ = ["SpectralNorm", "remove_spectral_norm", "spectral_norm"]


class SpectralNorm:
    """The forward pre-hook of a spectrally normalized weight (see the module docstring)."""

    def __init__(self, name: str = "weight", n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12) -> None:
        if n_power_iterations < 0:
            raise ValueError(f"n_power_iterations must be >= 0, got {n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def compute_weight(self, module: torch.nn.Module, do_power_iteration: bool) -> torch.Tensor:
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        if do_power_iteration:
            S.power_iteration(weight, u, v, self.n_power_iterations, self.dim, self.eps)
            if self.n_power_iterations > 0:
                # the graph keeps these: the next forward's iteration must not change them
                u, v = u.clone(), v.clone()
        if getattr(module, "impl", "scratch") == "native":
            sigma = torch.dot(u, torch.mv(S.weight_matrix(weight, self.dim), v))
            return weight / sigma
        return S.spectral_normalize(weight, u, v, self.dim)

    def __call__(self, module: torch.nn.Module, inputs: Any) -> None:
        setattr(module, self.name, self.compute_weight(module, module.training))

    def remove(self, module: torch.nn.Module) -> None:
        with torch.no_grad():
            weight = self.compute_weight(module, do_power_iteration=False)
        delattr(module, self.name)
        delattr(module, self.name + "_u")
        delattr(module, self.name + "_v")
        delattr(module, self.name + "_orig")
        module.register_parameter(self.name, torch.nn.Parameter(weight.detach()))


def _default_dim(module: torch.nn.Module) -> int:
    # a transposed convolution's weight is (in, out, ...): its output dim is 1
    return 1 if "ConvTranspose" in type(module).__name__ else 0


def spectral_norm(module: torch.nn.Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> torch.nn.Module:
    """Spectrally normalize ``module.<name>`` in place (as ``torch.nn.utils.spectral_norm``, the same
    random draws for ``u`` then ``v``); returns ``module``."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            raise RuntimeError(f"cannot register two spectral_norm hooks on the same parameter {name}")
    if dim is None:
        dim = _default_dim(module)
    fn = SpectralNorm(name, n_power_iterations, dim, eps)
    weight = module._parameters[name]
    with torch.no_grad():
        w_mat = S.weight_matrix(weight, dim)
        h, w = w_mat.shape
        u = S.normalize(weight.new_empty(h).normal_(0, 1), eps)   # (h,)
        v = S.normalize(weight.new_empty(w).normal_(0, 1), eps)   # (w,)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.data)
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module.register_forward_pre_hook(fn)
    return module


def remove_spectral_norm(module: torch.nn.Module, name: str = "weight") -> torch.nn.Module:
    """Undo :func:`spectral_norm`: ``module.<name>`` becomes a plain parameter holding ``W / sigma``."""
    for k, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, SpectralNorm) and hook.name == name:
            hook.remove(module)
            del module._forward_pre_hooks[k]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
