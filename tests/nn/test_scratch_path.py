"""The scratch path is hand-written end to end.

* the kernels that replaced the last autograd pieces (GLU, relative-position
  scores, per-utterance normalization, padding masks, batch sorting, packing)
  are gradchecked in float64 and match torch / the native path;
* a scratch model's autograd graph holds only our Functions plus glue with no
  math (views, concatenation, residual sums, constant scalings);
* Functions keep their tensors through ``save_for_backward``: saved-tensor
  hooks see them, they are freed after backward while the outputs live on,
  and in-place changes to them are caught.
"""
from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

import pytest
import torch
import torch.nn.functional as TF

import asrkit.nn as nn
from asrkit.models import build_model
from asrkit.nn.functional import activation as A
from asrkit.nn.functional import attention as AT
from asrkit.nn.functional import norm as N
from asrkit.nn.functional import rnn as R
from asrkit.nn.functional import shape as S

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch_graph import GLUE, graph_nodes, our_functions  # noqa: E402

F64 = {"dtype": torch.float64}


def _rand(*shape, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, **F64).requires_grad_(grad)


# ------------------------------------------------------------------ kernels: gradcheck + torch parity


@pytest.mark.parametrize("dim", [1, -1])
def test_glu_gradcheck_and_torch(dim):
    x = _rand(3, 6, 4)
    assert torch.autograd.gradcheck(lambda t: A.glu(t, dim), (x,))
    torch.testing.assert_close(A.glu(x, dim), TF.glu(x, dim))
    with pytest.raises(RuntimeError, match="even"):
        A.glu(_rand(3, 5), -1)


def test_glu_module_matches_torch_and_switches():
    x = _rand(2, 8, 5)
    ours, theirs = nn.GLU(dim=1), torch.nn.GLU(dim=1)
    gx = torch.autograd.grad(ours(x).pow(2).sum(), x)[0]
    gt = torch.autograd.grad(theirs(x).pow(2).sum(), x)[0]
    torch.testing.assert_close(gx, gt)
    nn.set_impl(ours, "native")
    torch.testing.assert_close(ours(x), theirs(x))


def _utt_batch():
    x = _rand(3, 6, 4)
    lengths = torch.tensor([6, 2, 4])
    return x, lengths


def test_utterance_norm_gradcheck_and_native():
    x, lengths = _utt_batch()
    assert torch.autograd.gradcheck(lambda t: N.utterance_norm(t, lengths), (x,))
    scratch, native = nn.UtteranceNorm(), nn.UtteranceNorm(impl="native")
    ys, yn = scratch(x, lengths), native(x, lengths)
    torch.testing.assert_close(ys, yn)
    g = _rand(3, 6, 4, grad=False, seed=1)
    torch.testing.assert_close(torch.autograd.grad(ys, x, g)[0], torch.autograd.grad(yn, x, g)[0])
    # zeros past each length, unit statistics within
    assert not ys[1, 2:].any() and not ys[2, 4:].any()
    valid = ys[2, :4]
    torch.testing.assert_close(valid.mean(0), torch.zeros(4, **F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(valid.var(0, unbiased=False), torch.ones(4, **F64), atol=1e-3, rtol=0)  # eps
    # alone == padded in a batch
    torch.testing.assert_close(scratch(x[2:3, :4], lengths[2:3]), ys[2:3, :4])


@pytest.mark.parametrize("masked", [False, True])
def test_rel_position_scores_gradcheck(masked):
    B, T, H, Dh = 2, 4, 2, 3
    q, pos = _rand(B, T, H * Dh), _rand(2 * T - 1, H * Dh, seed=1)
    u, v = _rand(H, Dh, seed=2), _rand(H, Dh, seed=3)
    args = (q, pos, u, v) + ((_rand(B, 1, 1, T, seed=4),) if masked else ())

    def both(*a):
        return AT.rel_position_scores(*a[:4], a[4] if masked else None, H, 0.7)

    assert torch.autograd.gradcheck(both, args)
    # each output alone (the other's gradient is None)
    assert torch.autograd.gradcheck(lambda *a: both(*a)[0], args)
    assert torch.autograd.gradcheck(lambda *a: both(*a)[1], args)


def test_rel_position_scores_match_the_gather_formula():
    B, T, H, Dh = 2, 5, 2, 3
    q, pos = _rand(B, T, H * Dh, grad=False), _rand(2 * T - 1, H * Dh, grad=False, seed=1)
    u, v = _rand(H, Dh, grad=False, seed=2), _rand(H, Dh, grad=False, seed=3)
    q_u, scores = AT.rel_position_scores(q, pos, u, v, None, H, 0.5)
    q4 = q.view(B, T, H, Dh)
    bd = torch.einsum("bthd,shd->bhts", q4 + v, pos.view(2 * T - 1, H, Dh))  # (B, H, T, 2T-1)
    for i in range(T):
        for j in range(T):  # column T-1-i+j holds distance i - j
            torch.testing.assert_close(scores[:, :, i, j], 0.5 * bd[:, :, i, T - 1 - i + j])
    torch.testing.assert_close(q_u, (q4 + u).transpose(1, 2))


def test_masked_fill_index_select_pack_unpack_gradcheck():
    x = _rand(3, 4, 2)
    mask = torch.tensor([[False, True, False, True], [False] * 4, [True] * 4])
    assert torch.autograd.gradcheck(lambda t: S.masked_fill(t, mask[..., None], 0.0), (x,))
    torch.testing.assert_close(S.masked_fill(x, mask[..., None], 0.0), x.masked_fill(mask[..., None], 0.0))
    idx = torch.tensor([2, 0, 1])
    assert torch.autograd.gradcheck(lambda t: S.index_select(t, 0, idx), (x,))
    assert torch.autograd.gradcheck(lambda t: S.index_select(t, 1, torch.tensor([3, 3, 0])), (x,))
    keep = ~mask
    assert torch.autograd.gradcheck(lambda t: S.pack(t, keep), (x,))
    data = _rand(int(keep.sum()), 2, seed=5)
    assert torch.autograd.gradcheck(lambda t: S.unpack(t, keep), (data,))
    torch.testing.assert_close(S.pack(S.unpack(data, keep), keep), data)


def test_packed_mask_is_packed_order():
    seqs = [torch.arange(n, dtype=torch.float64)[:, None] + 10 * b for b, n in enumerate([4, 3, 1])]
    packed = torch.nn.utils.rnn.pack_sequence(seqs)
    mask = R.packed_mask(packed.batch_sizes, "cpu")  # (T, B)
    padded = S.unpack(packed.data, mask)
    ref, _ = torch.nn.utils.rnn.pad_packed_sequence(packed)
    torch.testing.assert_close(padded, ref)


# ------------------------------------------------------------------ a scratch model is our Functions + glue

_MODELS = {
    "bilstm": {"type": "ctc", "encoder": "lstm", "hidden": 6, "layers": 2},
    "bigru": {"type": "ctc", "encoder": "gru", "hidden": 6, "layers": 1},
    "conformer_rel": {"type": "ctc", "encoder": "conformer", "hidden": 8, "layers": 1, "heads": 2,
                      "ff_mult": 2, "conv_kernel": 3},
    "conformer_abs": {"type": "ctc", "encoder": "conformer", "hidden": 8, "layers": 1, "heads": 2,
                      "ff_mult": 2, "conv_kernel": 3, "pos_enc": "abs"},
    "frame_mlp": {"type": "frame_mlp", "context": 1, "hidden": [8]},
}


def _model(name: str):
    torch.manual_seed(0)
    cfg = {"impl": "scratch", "input_dim": 6, "num_classes": 5, "dropout": 0.1, "conv_channels": 3,
           "subsampling": 2, **_MODELS[name]}
    if cfg["type"] != "ctc":
        cfg.pop("conv_channels"), cfg.pop("subsampling")
    return build_model(cfg).double().train()


def _batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, 11, 6, generator=g, **F64), torch.tensor([11, 7, 4])


@pytest.mark.parametrize("name", list(_MODELS))
def test_scratch_model_graph_is_our_functions_and_glue(name):
    logits, _ = _model(name)(*_batch())
    assert "LinearFunctionBackward" in our_functions(logits)


_SEQ2SEQ = {
    "las_location": {"type": "las", "attention": "location", "listener_hidden": 4, "pyramid_layers": 1,
                     "attention_dim": 4, "location_channels": 2, "location_kernel": 3, "embed_dim": 4,
                     "speller_hidden": 5, "speller_layers": 2, "ctc_weight": 0.2},
    "las_dot_conv": {"type": "las", "attention": "scaled_dot", "frontend": "conv2d", "conv_channels": 2,
                     "listener_hidden": 4, "pyramid_layers": 1, "attention_dim": 4, "embed_dim": 4,
                     "speller_hidden": 5, "locked_dropout": False},
    "transformer": {"type": "transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "encoder_layers": 1,
                    "decoder_layers": 1, "conv_channels": 2},
    "conformer_transformer": {"type": "transformer", "encoder": "conformer", "hidden": 8, "heads": 2,
                              "ff_mult": 2, "encoder_layers": 1, "decoder_layers": 1, "conv_channels": 2,
                              "conv_kernel": 3},
}


@pytest.mark.parametrize("name", list(_SEQ2SEQ))
def test_scratch_attention_model_graph_is_our_functions_and_glue(name):
    torch.manual_seed(0)
    model = build_model({"impl": "scratch", "input_dim": 6, "num_classes": 5, "dropout": 0.1,
                         **_SEQ2SEQ[name]}).double().train()
    feats, lengths = _batch()
    out = model(feats, lengths, torch.tensor([1, 2, 3, 4, 4, 2]), torch.tensor([3, 1, 2]),
                **({"tf_rate": 0.5} if _SEQ2SEQ[name]["type"] == "las" else {}))
    heads = [out.logits] + ([out.ctc_logits] if out.ctc_logits is not None else [])
    ours = our_functions(*heads)
    assert {"LinearFunctionBackward", "EmbeddingFunctionBackward"} <= ours
    if name.startswith("las"):
        assert {"MaskedSoftmaxFunctionBackward", "BmmFunctionBackward"} <= ours
    if name == "las_location":
        assert {"LockedDropoutFunctionBackward", "Conv1dFunctionBackward", "TanhFunctionBackward"} <= ours


def test_native_model_graph_is_not_scratch():
    """The check above can fail: a native model shows torch's own nodes."""
    model = nn.set_impl(_model("bilstm"), "native")
    kinds = {type(n).__name__ for n in graph_nodes(model(*_batch())[0])}
    assert not kinds <= GLUE | {"MulBackward0"}


# ------------------------------------------------------------------ saved tensors: save_for_backward, freed


def _lstm_case():
    lstm = nn.LSTM(5, 8, num_layers=2, bidirectional=True, batch_first=True).double()
    x = _rand(3, 9, 5)
    return (lambda: lstm(x, lengths=torch.tensor([9, 4, 6]))[0]), [x, *lstm.parameters()]


def _mha_case():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = _rand(2, 7, 8)
    return (lambda: mha(x, x, x, need_weights=True)[0]), [x, *mha.parameters()]


def _rel_case():
    att = nn.RelPositionMultiheadAttention(8, 2).double()
    x = _rand(2, 7, 8)
    return (lambda: att(x, key_padding_mask=torch.tensor([[False] * 7, [False] * 5 + [True] * 2]))[0]), \
        [x, *att.parameters()]


def _gru_case():
    gru = nn.GRU(5, 6, bidirectional=True).double()
    x = _rand(9, 3, 5)
    return (lambda: gru(x)[0]), [x, *gru.parameters()]


def _conformer_case():
    model = _model("conformer_rel")
    feats, lengths = _batch()
    return (lambda: model(feats, lengths)[0]), list(model.parameters())


def _las_case():
    torch.manual_seed(0)
    model = build_model({"impl": "scratch", "input_dim": 6, "num_classes": 5, "dropout": 0.1,
                         **_SEQ2SEQ["las_location"]}).double().train()
    feats, lengths = _batch()
    return (lambda: model(feats, lengths, torch.tensor([1, 2, 3, 4]), torch.tensor([2, 1, 1])).logits), \
        list(model.parameters())


@pytest.mark.parametrize("case", [_lstm_case, _gru_case, _mha_case, _rel_case, _conformer_case, _las_case],
                         ids=["lstm", "gru", "mha", "relpos", "conformer_ctc", "las"])
def test_saved_tensors_are_packed_and_freed_after_backward(case):
    run, keep = case()
    packed: list[weakref.ref] = []

    def pack(t):
        packed.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    assert packed, "no Function saved its tensors through save_for_backward"
    out.pow(2).sum().backward()
    gc.collect()
    # the output lives on, yet nothing saved for backward does (but inputs, parameters and the output itself)
    alive = {id(t) for t in keep} | {id(out)} | ({id(out._base)} if out._base is not None else set())
    left = [r() for r in packed if r() is not None and id(r()) not in alive]
    assert not left, [tuple(t.shape) for t in left]
    # and no Function keeps tensors on ctx itself, where nothing would free them
    for n in graph_nodes(out):
        held = [k for k, v in getattr(n, "__dict__", {}).items() if _holds_tensor(v)]
        assert not held, f"{type(n).__name__} keeps tensors in ctx.{held}"


def _holds_tensor(v) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (list, tuple)):
        return any(_holds_tensor(i) for i in v)
    if isinstance(v, dict):
        return any(_holds_tensor(i) for i in v.values())
    return False


def test_inplace_change_of_a_saved_tensor_is_caught():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    x = _rand(2, 5, 8)
    out, weights = mha(x, x, x, need_weights=True, average_attn_weights=False)
    with torch.no_grad():
        weights.mul_(2.0)  # the weights are what the backward multiplies the gradient with
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
