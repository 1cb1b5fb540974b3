"""How a hand-written kernel pair becomes a trainable op: the shared conventions.

Every op in :mod:`asrkit.nn` (part 1: MLP/CNN layers, part 2: recurrent and
attention layers) follows the same five rules. They live here once.

1. **Kernels** (``asrkit/nn/functional/<area>.py``)::

       def <op>_forward(x, weight, ..., *, option=...) -> (out, cache)
       def <op>_backward(grad_out, cache) -> (grad_x, grad_weight, ...)

   Plain torch tensor ops, no autograd inside (the Function runs them with
   grad mode off). ``cache`` is a tuple; tensors in it are saved with
   ``ctx.save_for_backward`` (so saving ``out`` itself is fine), anything else
   (ints, shapes, ``None``) is kept as is. The backward kernel returns one
   gradient per *leading tensor argument* of the forward kernel, in order
   (``None`` where there is nothing, e.g. a missing bias); trailing
   non-tensor arguments get ``None`` automatically. A backward kernel may take
   an optional ``needs`` keyword (a tuple of bools, ``ctx.needs_input_grad``)
   to skip gradients nobody asked for.

2. **Function**: ``kernel_function("Name", fwd, bwd)`` builds the
   ``torch.autograd.Function`` calling the two kernels; extra outputs with an
   integer dtype (e.g. max-pool indices) are marked non-differentiable and
   the backward kernel receives the gradient of the first output only;
   ``all_grads=True`` makes every output differentiable and passes the
   backward kernel one gradient per output (attention: ``out`` and the
   weights).
   First-order only (``once_differentiable``); every Function is gradchecked
   in float64 in ``tests/nn/``.

3. **Autocast**: the public functional of each op
   (e.g. ``asrkit.nn.functional.linear.linear``) calls
   ``apply(Function, policy, *args)``. Under ``torch.autocast`` it casts
   the floating tensor arguments as torch's own op is cast, then runs the
   Function with autocast off so the kernel sees exactly those dtypes:

   * ``LOWER`` – to the autocast dtype (fp16/bf16): linear, conv, matmul, bmm;
   * ``FP32`` – to float32: losses (CUDA and CPU autocast both do this);
   * ``FP32_CUDA`` – to float32 on CUDA only (torch's CUDA list has
     layer_norm, softmax, log_softmax; CPU autocast leaves them alone);
   * ``NONE`` – untouched: activations, dropout, batch norm, pooling.

   Kernels that see fp16/bf16 inputs with fp32 parameters (norm layers under
   autocast) accumulate in float32 (:func:`acc_dtype`) and return the output
   in the input's dtype, as torch does. The cast happens outside the
   Function, so autograd casts the gradients back.

4. **Big temporaries**: a kernel that needs a large scratch tensor only
   inside one call (im2col columns, a centred copy) takes it from
   ``workspace(numel, dtype, device, slot)`` instead of allocating: on CPU a
   fresh 100 MB allocation costs more page faults than the arithmetic. A
   workspace is reused by the next kernel, so it is never returned or saved
   in the cache; the backward rebuilds what it needs from saved inputs.

5. **Modules** (``asrkit/nn/<area>.py``) subclass :class:`asrkit.nn.Module`,
   copy torch's constructor signature exactly (plus keyword-only
   ``impl="scratch"``) and torch's ``reset_parameters`` using
   :mod:`asrkit.nn.init` (same calls in the same order, so the same seed gives
   the same weights as ``torch.nn``). ``forward`` dispatches in one line::

       def forward(self, x):
           if self.native:
               return torch.nn.functional.linear(x, self.weight, self.bias)
           return L.linear(x, self.weight, self.bias)   # asrkit.nn.functional.linear as L
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

LOWER = "lower"
FP32 = "fp32"
FP32_CUDA = "fp32_cuda"
NONE = "none"
_POLICIES = (LOWER, FP32, FP32_CUDA, NONE)

_LOW = (torch.float16, torch.bfloat16)


def acc_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype to accumulate statistics in: float32 for fp16/bf16, else ``x.dtype``."""
    return torch.float32 if x.dtype in _LOW else x.dtype


_local = threading.local()


def workspace(numel: int, dtype: torch.dtype, device: torch.device, slot: int = 0) -> torch.Tensor:
    """A reusable per-thread scratch buffer of ``numel`` elements (1-D).

    Large temporaries allocated fresh on every call cost more than the
    arithmetic on CPU (page faults), so kernels write them here instead. The
    contents are only valid until the next kernel uses the same ``slot``:
    never return it, never save it for backward.
    """
    bufs = _local.__dict__.setdefault("bufs", {})
    key = (device, dtype, slot)
    buf = bufs.get(key)
    if buf is None or buf.numel() < numel:
        bufs.pop(key, None)
        # A normal tensor even when first asked for under torch.inference_mode():
        # an inference tensor could not be written later, when training.
        with torch.inference_mode(False):
            buf = torch.empty(numel, dtype=dtype, device=device)
        bufs[key] = buf
    return buf[:numel]


def release_workspace() -> None:
    """Free this thread's scratch buffers."""
    _local.__dict__.pop("bufs", None)


def save_cache(ctx: Any, cache: Sequence[Any]) -> None:
    """Keep a kernel's ``cache`` on ``ctx`` for backward: its tensors through
    ``ctx.save_for_backward`` (freed after backward, checked against in-place
    changes, visible to saved-tensor hooks), everything else as plain values.
    ``None`` entries stay ``None``; nested containers of tensors are not allowed."""
    tensors, layout = [], []
    for item in cache:
        if isinstance(item, torch.Tensor):
            layout.append(len(tensors))
            tensors.append(item)
        else:
            if isinstance(item, (list, tuple)) and any(isinstance(i, torch.Tensor) for i in item):
                raise TypeError("a kernel cache holds tensors at its top level only")
            layout.append(None)
    ctx.save_for_backward(*tensors)
    ctx._layout = layout
    ctx._others = [None if isinstance(c, torch.Tensor) else c for c in cache]


def load_cache(ctx: Any) -> tuple:
    """The ``cache`` given to :func:`save_cache`, in order."""
    saved = ctx.saved_tensors
    return tuple(
        saved[slot] if slot is not None else other
        for slot, other in zip(ctx._layout, ctx._others)
    )


def kernel_function(
    name: str,
    forward_kernel: Callable[..., tuple[Any, tuple]],
    backward_kernel: Callable[..., Sequence[torch.Tensor | None]],
    *,
    pass_needs: bool = False,
    all_grads: bool = False,
) -> type[torch.autograd.Function]:
    """Build a ``torch.autograd.Function`` named ``name`` from a kernel pair.

    ``forward_kernel(*args) -> (out, cache)`` where ``out`` is a tensor or a
    tuple of tensors; ``backward_kernel(grad_out, cache[, needs=...])``
    returns the gradients of the leading tensor arguments. With
    ``all_grads=True`` every output is differentiable and the backward kernel
    gets the gradient of each, ``backward_kernel(grad_1, ..., grad_k, cache[,
    needs=...])``, ``None`` for an output that got none.
    """

    def forward(ctx: Any, *args: Any) -> Any:
        if all_grads:
            ctx.set_materialize_grads(False)
        out, cache = forward_kernel(*args)
        save_cache(ctx, cache)
        ctx._nargs = len(args)
        if isinstance(out, tuple) and not all_grads:
            ctx.mark_non_differentiable(*[o for o in out if not o.is_floating_point()])
        return out

    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple:
        if all_grads and all(g is None for g in grads):
            return (None,) * ctx._nargs
        cache = load_cache(ctx)
        grad_out = grads if all_grads else grads[:1]
        if pass_needs:
            res = backward_kernel(*grad_out, cache, needs=tuple(ctx.needs_input_grad))
        else:
            res = backward_kernel(*grad_out, cache)
        if isinstance(res, torch.Tensor) or res is None:
            res = (res,)
        res = list(res) + [None] * (ctx._nargs - len(res))
        return tuple(g if need else None for g, need in zip(res, ctx.needs_input_grad))

    fn = type(name, (torch.autograd.Function,), {
        "forward": staticmethod(forward),
        "backward": staticmethod(backward),
        "__doc__": f"autograd Function joining ``{forward_kernel.__name__}`` and "
                   f"``{backward_kernel.__name__}``.",
        "__module__": forward_kernel.__module__,
    })
    return fn


def _device_type(args: Sequence[Any]) -> str | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
    return None


def _cast(a: Any, dtype: torch.dtype) -> Any:
    # autocast never touches float64 tensors
    if (isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype
            and a.dtype != torch.float64):
        return a.to(dtype)
    return a


def apply(fn: type[torch.autograd.Function], policy: str, *args: Any) -> Any:
    """Run ``fn.apply(*args)`` the way torch's own op behaves under autocast.

    Outside autocast this is just ``fn.apply(*args)``. Inside, floating tensor
    arguments are cast by ``policy`` (see the module docstring) and the
    Function runs with autocast disabled.
    """
    dev = _device_type(args)
    if dev is None or dev not in ("cuda", "cpu", "xpu", "mps") or not torch.is_autocast_enabled(dev):
        return fn.apply(*args)
    if policy == LOWER:
        target: torch.dtype | None = torch.get_autocast_dtype(dev)
    elif policy == FP32 or (policy == FP32_CUDA and dev == "cuda"):
        target = torch.float32
    elif policy in _POLICIES:
        target = None
    else:
        raise ValueError(f"unknown autocast policy {policy!r}")
    if target is not None:
        args = tuple(_cast(a, target) for a in args)
    with torch.autocast(dev, enabled=False):
        return fn.apply(*args)
