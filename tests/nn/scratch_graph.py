"""What the scratch-path tests check on a model's autograd graph (tests/nn/test_scratch_path.py,
tests/models/test_lm_models.py): only our autograd Functions plus glue with no arithmetic."""
from __future__ import annotations

import torch

# autograd nodes that may appear outside our Functions: views, copies and
# concatenation (no math), residual sums, and scalings by a constant
GLUE = {
    "AccumulateGrad", "ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0", "TransposeBackward0",
    "PermuteBackward0", "CloneBackward0", "CatBackward0", "StackBackward0", "SplitBackward0",
    "SelectBackward0", "SliceBackward0", "UnsqueezeBackward0", "SqueezeBackward1", "ExpandBackward0",
    "AddBackward0",
}


def graph_nodes(t: torch.Tensor) -> set:
    """Every autograd node behind ``t``."""
    seen, stack = set(), [t.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        stack.extend(f for f, _ in n.next_functions)
    return seen


def our_functions(*outputs: torch.Tensor) -> set[str]:
    """The names of our autograd Functions behind ``outputs``; asserts that every other node is
    :data:`GLUE` or a scaling by a constant (``MulBackward0`` with one saved scalar), and that
    no node keeps a ``cache`` on ctx."""
    ours, other = set(), set()
    for out in outputs:
        for n in graph_nodes(out):
            kind = type(n).__name__
            if kind.endswith("FunctionBackward"):  # one of our autograd Functions
                ours.add(kind)
            elif kind == "MulBackward0":  # only a constant scaling (residual halves, x * sqrt(d))
                assert n._saved_self is None and n._saved_other.numel() == 1, kind
            else:
                other.add(kind)
            assert not hasattr(n, "cache"), f"{kind} keeps a cache on ctx"
    assert other <= GLUE, other - GLUE
    return ours
