"""Hand-written kernels: ``<op>_forward(...) -> (out, cache)`` and
``<op>_backward(grad_out, cache) -> grads``, torch tensor ops only, no autograd
inside; plus the ``torch.autograd.Function`` that joins each pair."""
