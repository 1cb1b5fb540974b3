"""CTC loss: hand-computed alpha/beta tables, parity with F.ctc_loss, gradcheck, a BiLSTM-CTC model."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as TF

from asrkit.nn import Linear, set_impl
from asrkit.nn.ctc import CTCLoss
from asrkit.nn.functional.ctc import ctc_alpha_beta, ctc_loss, ctc_loss_from_logits
from asrkit.nn.rnn import LSTM


def test_alpha_beta_tables_by_hand():
    # blank 0, label 1, target "1", T = 2: ext = (blank, 1, blank)
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)  # (T, C)
    lp = p.log().unsqueeze(1)  # (T, 1, C)
    ext = torch.tensor([[0, 1, 0]])
    skip = torch.zeros(1, 3, dtype=torch.bool)
    alpha, beta, nll, _ = ctc_alpha_beta(lp, ext, skip, torch.tensor([2]), torch.tensor([1]))
    want_alpha = torch.tensor([[0.6, 0.4, 0.0], [0.18, 0.7, 0.12]], dtype=torch.float64)
    want_beta = torch.tensor([[0.42, 0.4, 0.18], [0.0, 0.7, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(alpha[:, 0].exp(), want_alpha, atol=1e-12, rtol=0)
    torch.testing.assert_close(beta[:, 0].exp(), want_beta, atol=1e-12, rtol=0)
    # paths for "1": (1,1) .28 + (0,1) .42 + (1,0) .12
    assert nll.item() == pytest.approx(-math.log(0.82), abs=1e-12)
    # gradient (torch's convention: p - occupancy) at frame 0: blank .42/.82, label .40/.82
    lpg = lp.clone().requires_grad_()
    loss = ctc_loss(lpg, torch.tensor([[1]]), [2], [1], reduction="sum")
    (g,) = torch.autograd.grad(loss, lpg)
    torch.testing.assert_close(g[0, 0], torch.tensor([0.6 - 0.42 / 0.82, 0.4 - 0.40 / 0.82], dtype=torch.float64))


def _peaky(T, B, C, tl, dtype, seed):
    """Realistic CTC posteriors: a random alignment boosted well above the rest."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(T, B, C, generator=g, dtype=dtype)
    path = torch.randint(0, C, (T, B), generator=g)
    logits.scatter_add_(2, path.unsqueeze(-1), torch.full((T, B, 1), 8.0, dtype=dtype))
    targets = torch.randint(1, C, (B, int(max(tl))), generator=g)
    return TF.log_softmax(logits, -1), targets


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("concat", [False, True])
def test_matches_torch_peaky(dtype, tol, reduction, concat):
    T, B, C = 50, 5, 8
    il = torch.tensor([50, 44, 30, 12, 41])
    tl = torch.tensor([10, 17, 3, 0, 12])
    lp, tg = _peaky(T, B, C, tl, dtype, seed=7)
    tg[0, 2:5] = 3  # repeated labels need blanks between them
    targets = torch.cat([tg[b, : tl[b]] for b in range(B)]) if concat else tg
    a = lp.clone().requires_grad_()
    b = lp.clone().requires_grad_()
    la = ctc_loss(a, targets, il, tl, reduction=reduction)
    lb = TF.ctc_loss(b, targets, il, tl, reduction=reduction)
    torch.testing.assert_close(la, lb, atol=tol, rtol=tol)
    w = torch.rand_like(la) + 0.5
    (ga,) = torch.autograd.grad((la * w).sum(), a)
    (gb,) = torch.autograd.grad((lb * w).sum(), b)
    torch.testing.assert_close(ga, gb, atol=tol, rtol=tol)
    assert torch.all(ga[12:, 3] == 0)  # frames past an utterance's end get no gradient


def test_fused_logits_path_and_blank():
    T, B, C = 20, 3, 6
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(T, B, C, generator=g, dtype=torch.float64) * 3
    tg = torch.randint(0, C - 1, (B, 4), generator=g)  # labels 0..4, blank is 5
    il, tl = torch.tensor([20, 15, 9]), torch.tensor([4, 2, 3])
    x1 = logits.clone().requires_grad_()
    x2 = logits.clone().requires_grad_()
    l1 = ctc_loss_from_logits(x1, tg, il, tl, blank=C - 1)
    l2 = TF.ctc_loss(TF.log_softmax(x2, -1), tg, il, tl, blank=C - 1)
    torch.testing.assert_close(l1, l2, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(torch.autograd.grad(l1, x1)[0], torch.autograd.grad(l2, x2)[0],
                               atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignment(zero_infinity):
    T, C = 4, 5
    lp = TF.log_softmax(torch.randn(T, 2, C, dtype=torch.float64), -1)
    tg = torch.tensor([[1, 1, 2], [1, 2, 3]])  # "1 1 2" needs 4 frames, "1 2 3" needs 3
    il, tl = torch.tensor([3, 3]), torch.tensor([3, 3])
    for red in ("none", "sum", "mean"):
        a = lp.clone().requires_grad_()
        b = lp.clone().requires_grad_()
        la = ctc_loss(a, tg, il, tl, reduction=red, zero_infinity=zero_infinity)
        lb = TF.ctc_loss(b, tg, il, tl, reduction=red, zero_infinity=zero_infinity)
        torch.testing.assert_close(la, lb, equal_nan=True)
        if red == "none":
            assert math.isinf(la[0].item()) != zero_infinity
        ga = torch.autograd.grad(la.sum(), a)[0]
        gb = torch.autograd.grad(lb.sum(), b)[0]
        torch.testing.assert_close(ga, gb, equal_nan=True)


def test_gradcheck():
    T, B, C = 6, 2, 4
    logits = torch.randn(T, B, C, dtype=torch.float64, requires_grad=True)
    tg = torch.tensor([[1, 2, 2], [3, 1, 0]])
    il, tl = torch.tensor([6, 5]), torch.tensor([3, 2])
    for red in ("none", "mean", "sum"):
        assert torch.autograd.gradcheck(lambda x: ctc_loss_from_logits(x, tg, il, tl, reduction=red), (logits,))
        # torch's convention w.r.t. log_probs: exact once composed with log_softmax
        assert torch.autograd.gradcheck(
            lambda x: ctc_loss(torch.log_softmax(x, -1), tg, il, tl, reduction=red), (logits,))


def test_module_scratch_vs_native():
    lp, tg = _peaky(30, 4, 7, [5, 5, 5, 5], torch.float32, seed=3)
    il, tl = torch.tensor([30, 28, 20, 25]), torch.tensor([5, 4, 5, 2])
    crit = CTCLoss(blank=0, zero_infinity=True)
    a = crit(lp, tg, il, tl)
    set_impl(crit, "native")
    torch.testing.assert_close(a, crit(lp, tg, il, tl), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError):
        CTCLoss(reduction="avg")
    with pytest.raises(ValueError):
        ctc_loss(lp, tg, torch.tensor([31, 1, 1, 1]), tl)


class _BiLSTMCTC(torch.nn.Module):
    """A 2-layer BiLSTM-CTC acoustic model from asrkit layers (or its torch.nn twin)."""

    def __init__(self, idim: int, hidden: int, odim: int, torch_twin: bool = False) -> None:
        super().__init__()
        if torch_twin:
            self.rnn = torch.nn.LSTM(idim, hidden, num_layers=2, bidirectional=True, batch_first=True)
            self.out = torch.nn.Linear(2 * hidden, odim)
            self.crit = torch.nn.CTCLoss(zero_infinity=True)
        else:
            self.rnn = LSTM(idim, hidden, num_layers=2, bidirectional=True, batch_first=True)
            self.out = Linear(2 * hidden, odim)
            self.crit = CTCLoss(zero_infinity=True)

    def forward(self, x, lengths, targets, target_lengths):
        p = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(p)
        h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        lp = torch.log_softmax(self.out(h), -1).transpose(0, 1)  # (T, B, C)
        return self.crit(lp, targets, lengths, target_lengths)


def test_bilstm_ctc_model_scratch_native_torch():
    torch.manual_seed(0)
    ours = _BiLSTMCTC(6, 8, 5)
    twin = _BiLSTMCTC(6, 8, 5, torch_twin=True)
    ours.load_state_dict(twin.state_dict())  # a torch.nn state_dict loads unchanged
    x = torch.randn(3, 12, 6)
    lens, tg, tl = torch.tensor([12, 9, 5]), torch.tensor([[1, 2, 3], [4, 4, 0], [2, 0, 0]]), torch.tensor([3, 2, 1])
    grads = {}
    for name, model in (("scratch", ours), ("native", set_impl(_clone(ours), "native")), ("torch", twin)):
        loss = model(x, lens, tg, tl)
        grads[name] = (loss.detach(), torch.autograd.grad(loss, list(model.parameters())))
    for name in ("native", "torch"):
        torch.testing.assert_close(grads["scratch"][0], grads[name][0], atol=1e-5, rtol=1e-4)
        for u, v in zip(grads["scratch"][1], grads[name][1]):
            torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


def _clone(m):
    import copy

    return copy.deepcopy(m)
