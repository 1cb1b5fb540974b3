"""The base of every asrkit layer and the scratch/native switch.

Every layer in :mod:`asrkit.nn` subclasses :class:`Module` and has an ``impl``
attribute: ``"scratch"`` runs the hand-written kernels of
:mod:`asrkit.nn.functional` through their ``torch.autograd.Function``;
``"native"`` calls torch's own kernel. ``impl`` is not part of the state_dict,
so one checkpoint serves both, and a ``torch.nn`` twin's state_dict loads
unchanged.
"""
from __future__ import annotations

import torch

IMPLS = ("scratch", "native")


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


class Module(torch.nn.Module):
    """A torch module with a switchable implementation (``impl``)."""

    def __init__(self, impl: str = "scratch") -> None:
        super().__init__()
        self.impl = check_impl(impl)

    @property
    def native(self) -> bool:
        return self.impl == "native"

    def extra_repr(self) -> str:  # subclasses prepend their own fields
        return f"impl={self.impl!r}"


def set_impl(model: torch.nn.Module, impl: str) -> torch.nn.Module:
    """Switch every asrkit layer inside ``model`` to ``impl`` in place; returns ``model``."""
    check_impl(impl)
    for m in model.modules():
        if isinstance(m, Module):
            m.impl = impl
    return model
