"""The neural LMs (asrkit.models.lm): scratch = native, step = forward, beams, memorizing, tied weights,
the target log-probs form of forward, the adaptive softmax output layer."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml

import asrkit.nn as nn
from asrkit.errors import ConfigError
from asrkit.models import LSTMLM, TransformerLM, build_model, resolve_model_config
from asrkit.nn.functional import dropout as D

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nn"))

from scratch_graph import our_functions  # noqa: E402

F64 = {"dtype": torch.float64}
C = 13
CASES = {
    "lstm": {"type": "lm_lstm", "embed_dim": 6, "hidden": 6, "layers": 2},
    "lstm_proj": {"type": "lm_lstm", "embed_dim": 5, "hidden": 7, "layers": 3},
    "lstm_untied": {"type": "lm_lstm", "embed_dim": 5, "hidden": 7, "layers": 1, "tie_weights": False},
    "transformer": {"type": "lm_transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "layers": 2},
    "transformer_learned": {"type": "lm_transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "layers": 1,
                            "pos_enc": "learned", "max_len": 16, "tie_weights": False},
    # the adaptive softmax: a shortlist of 4 and clusters 4..7, 8..12 (tails 8 // 2 and 8 // 4 wide)
    "lstm_adaptive": {"type": "lm_lstm", "embed_dim": 5, "hidden": 8, "layers": 2, "tie_weights": False,
                      "adaptive_cutoffs": [4, 8], "adaptive_div": 2.0},
    "transformer_adaptive": {"type": "lm_transformer", "hidden": 8, "heads": 2, "ff_mult": 2, "layers": 2,
                             "tie_weights": False, "adaptive_cutoffs": [3, 6, 10], "adaptive_div": 2.0},
}
ADAPTIVE = ["lstm_adaptive", "transformer_adaptive"]
NO_DROPOUT = {"dropout": 0.0}
LSTM_NO_DROPOUT = {"embed_dropout": 0.0, "input_dropout": 0.0, "hidden_dropout": 0.0}


def _model(name: str, dropout: bool = False, seed: int = 0):
    cfg = {"num_classes": C, **CASES[name]}
    if not dropout:
        cfg.update(NO_DROPOUT)
        if cfg["type"] == "lm_lstm":
            cfg.update(LSTM_NO_DROPOUT)
    torch.manual_seed(seed)
    return build_model(cfg).double()


def _tokens(B: int = 3, L: int = 9, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(1, C, (B, L), generator=g)
    t[:, 0] = 0  # every row starts at a sentence boundary
    t[1, 4] = 0  # and one crosses into the next sentence
    return t


def _run(model, tokens, weights):
    model.zero_grad(set_to_none=True)
    logits = model(tokens)
    (logits * weights).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(CASES))
def test_scratch_and_native_agree_from_one_state_dict(name):
    scratch = _model(name).train()
    native = _model(name, seed=123).train()
    nn.set_impl(native, "native")
    native.load_state_dict(scratch.state_dict())  # one state_dict, two implementations
    tokens = _tokens()
    weights = torch.randn(*tokens.shape, C, generator=torch.Generator().manual_seed(2), **F64)
    ys, gs = _run(scratch, tokens, weights)
    yn, gn = _run(native, tokens, weights)
    torch.testing.assert_close(ys, yn, rtol=1e-9, atol=1e-10)
    assert gs.keys() == gn.keys() and gs
    for key in gs:
        torch.testing.assert_close(gs[key], gn[key], rtol=1e-8, atol=1e-10, msg=key)
    assert all(m.impl == "native" for m in native.modules() if isinstance(m, nn.Module))


@pytest.mark.parametrize("name", list(CASES))
def test_step_by_step_log_probs_equal_forward(name):
    model = _model(name, dropout=True).eval()  # dropout is off in eval
    tokens = _tokens()
    with torch.no_grad():
        ref = torch.log_softmax(model(tokens), -1)  # (B, L, C)
        state = model.init_state(tokens.shape[0])
        for i in range(tokens.shape[1]):
            logp, state = model.step(state, tokens[:, i])
            assert logp.dtype == torch.float32 and logp.shape == (tokens.shape[0], C)
            torch.testing.assert_close(logp, ref[:, i].float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_select_state_keeps_the_chosen_histories(name):
    model = _model(name).eval()
    tokens = _tokens(B=3, L=6)
    idx = torch.tensor([2, 0, 2, 1])
    with torch.no_grad():
        state = model.init_state(3)
        for i in range(4):
            _, state = model.step(state, tokens[:, i])
        state = model.select_state(state, idx)  # repeat, reorder
        for i in range(4, 6):
            logp, state = model.step(state, tokens[idx, i])
        ref = torch.log_softmax(model(tokens[idx]), -1)[:, 5].float()
    torch.testing.assert_close(logp, ref, rtol=1e-5, atol=1e-5)


def test_transformer_step_past_max_len_keeps_a_window():
    model = _model("transformer_learned").eval()  # max_len 16
    tokens = _tokens(B=2, L=20)
    with pytest.raises(ValueError, match="max_len=16"):
        model(tokens)
    idx = torch.tensor([1, 0, 1])
    with torch.no_grad():
        state = model.init_state(2)
        for i in range(20):
            logp, state = model.step(state, tokens[:, i])
            if i < 15:  # the cache holds the whole history: step = forward of the prefix
                torch.testing.assert_close(logp, torch.log_softmax(model(tokens[:, :i + 1]), -1)[:, -1].float(),
                                           rtol=1e-5, atol=1e-5)
            if i == 13:  # a beam's reordering just before the window starts to slide
                state, tokens = model.select_state(state, idx), tokens[idx]
        ref = torch.log_softmax(model(tokens[:, 4:]), -1)[:, -1].float()
    # the last 16 tokens are the context, at positions 0 .. 15 as forward sees a block
    assert state.length == 20 and state.tokens.tolist() == tokens[:, 4:].tolist() and state.caches is None
    torch.testing.assert_close(logp, ref, rtol=1e-5, atol=1e-5)


def test_transformer_step_is_incremental():
    """Up to max_len a step runs one position through the blocks (their ``step`` with a KV cache)."""
    model = _model("transformer").eval()
    tokens = _tokens(B=2, L=5)
    calls = []
    for block in model.blocks:
        block.forward = lambda *a, **k: calls.append(1)  # the whole-prefix path is not taken
    with torch.no_grad():
        state = model.init_state(2)
        for i in range(5):
            _, state = model.step(state, tokens[:, i])
    assert not calls and state.length == 5 and all(len(c) == 5 for c in state.caches)


def test_lstm_forward_state_carries_over_blocks():
    model = _model("lstm").eval()
    tokens = _tokens(L=10)
    with torch.no_grad():
        whole = model(tokens)
        first, state = model.forward_state(tokens[:, :4])
        second, _ = model.forward_state(tokens[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


# ------------------------------------------------------------------ training: memorize a tiny text

TEXT = ["a b c d", "b a d", "c c a b d", "d"]  # four sentences over four words


def _stream() -> torch.Tensor:
    """``0 s1 0 s2 0 ...``: the sentences joined with id 0, words a..d as ids 1..4."""
    ids = [0]
    for line in TEXT:
        ids += [" abcd".index(w) for w in line.split()] + [0]
    return torch.tensor(ids)


def _overfit(name: str, steps: int) -> tuple[float, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = {"type": CASES[name]["type"], "num_classes": 5, "dropout": 0.0}
    if cfg["type"] == "lm_lstm":
        cfg.update(LSTM_NO_DROPOUT, embed_dim=16, hidden=32, layers=1)
    else:
        cfg.update(hidden=16, heads=2, layers=1, ff_mult=2, max_len=32)
    if name in ADAPTIVE:  # shortlist <eos> a, clusters b c and d
        cfg.update(tie_weights=False, adaptive_cutoffs=[2, 4], adaptive_div=2.0)
    model = build_model(cfg).train()
    stream = _stream()
    inputs, targets = stream[None, :-1], stream[None, 1:]
    opt = nn.optim.Adam(model.parameters(), lr=0.03)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        if name in ADAPTIVE:  # the task's loss: the targets' log-probs, no full softmax
            loss = -model(inputs, targets).mean()
        else:
            loss = loss_fn(model(inputs).reshape(-1, 5), targets.reshape(-1))
        loss.backward()
        opt.step()
    # The stream is deterministic given its prefix, so the loss can go to zero.
    return loss.item(), model.eval()


@pytest.mark.parametrize("name", ["lstm", "transformer", *ADAPTIVE])
def test_overfits_a_tiny_text(name):
    loss, model = _overfit(name, 150)
    assert loss < 0.05, loss
    # and greedy continuation from the start reproduces the text
    with torch.no_grad():
        state, tok, out = model.init_state(1), torch.zeros(1, dtype=torch.long), []
        for _ in range(len(_stream()) - 1):
            logp, state = model.step(state, tok)
            tok = logp.argmax(-1)
            out.append(int(tok))
    assert out == _stream()[1:].tolist()


# ------------------------------------------------------------------ tied weights


def test_tied_weights_are_one_tensor_under_two_names():
    model = _model("lstm")
    assert model.output.weight is model.embed.weight and model.proj is None
    sd = model.state_dict()
    assert "output.weight" in sd and "embed.weight" in sd
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel() for k, v in sd.items() if k != "output.weight")
    # both uses reach the one gradient: input lookup and output layer
    tokens = _tokens()
    model(tokens).sum().backward()
    g_tied = model.embed.weight.grad.clone()
    untied = _model("lstm")
    untied.output.weight = torch.nn.Parameter(untied.embed.weight.detach().clone())
    untied.zero_grad()
    untied(tokens).sum().backward()
    torch.testing.assert_close(g_tied, untied.embed.weight.grad + untied.output.weight.grad)
    # loading a state_dict keeps them tied
    fresh = _model("lstm", seed=7)
    fresh.load_state_dict(sd)
    assert fresh.output.weight is fresh.embed.weight
    torch.testing.assert_close(fresh.output.weight, sd["embed.weight"])


def test_tie_weights_with_other_sizes_projects_and_untied_is_separate():
    proj = _model("lstm_proj")  # hidden 7 != embed 5: Linear(7, 5) then the tied output
    assert proj.proj is not None and proj.proj.weight.shape == (5, 7)
    assert proj.output.weight is proj.embed.weight
    untied = _model("lstm_untied")
    assert untied.proj is None and untied.output.weight is not untied.embed.weight
    assert untied.output.weight.shape == (C, 7)
    tr = _model("transformer")
    assert tr.output.weight is tr.embed.weight
    assert _model("transformer_learned").output.weight is not _model("transformer_learned").embed.weight


# ------------------------------------------------------------------ embedding dropout, scratch graph


def test_embedding_dropout_drops_whole_word_types_and_matches_native():
    tokens = _tokens(B=4, L=12)
    x = torch.randn(4, 12, 6, **F64, requires_grad=True)
    layer = nn.EmbeddingDropout(C, p=0.5)
    torch.manual_seed(5)
    y = layer(x, tokens)
    kept = (y != 0).all(-1)
    for w in tokens.unique():  # a word type is kept everywhere or nowhere
        assert kept[tokens == w].all() or not kept[tokens == w].any()
    assert kept.any() and not kept.all()
    torch.testing.assert_close(y[kept], 2 * x[kept])
    nn.set_impl(layer, "native")
    torch.manual_seed(5)
    torch.testing.assert_close(layer(x, tokens), y)  # the same draws

    def same_mask(t):  # gradcheck calls it many times: one mask for all of them
        with torch.random.fork_rng():
            torch.manual_seed(5)
            return D.embedding_dropout(t, tokens, C, 0.5)

    assert torch.autograd.gradcheck(same_mask, (x,))
    assert torch.equal(layer.eval()(x, tokens), x)


@pytest.mark.parametrize("name", ["lstm_proj", "transformer_learned", *ADAPTIVE])
def test_scratch_graph_is_our_functions_and_glue(name):
    model = _model(name, dropout=True).train()
    tokens = _tokens()
    ours = our_functions(model(tokens))
    assert "EmbeddingFunctionBackward" in ours
    if name.startswith("lstm"):
        assert {"EmbeddingDropoutFunctionBackward", "LockedDropoutFunctionBackward"} <= ours
    with_targets = our_functions(model(tokens, _targets(tokens)))
    if name in ADAPTIVE:
        assert "AdaptiveLogProbFunctionBackward" in ours
        assert {"AdaptiveLogSoftmaxFunctionBackward", "PackFunctionBackward", "UnpackFunctionBackward"} <= with_targets
        assert "AdaptiveLogProbFunctionBackward" not in with_targets  # no full distribution in training
    else:
        assert "LinearFunctionBackward" in ours
        assert {"LinearFunctionBackward", "CrossEntropyFunctionBackward"} <= with_targets


# ------------------------------------------------------------------ forward(tokens, targets), the adaptive softmax


def _targets(tokens: torch.Tensor) -> torch.Tensor:
    """The next tokens (a random id after the last one), -100 (not scored) at a few positions."""
    g = torch.Generator().manual_seed(4)
    t = torch.cat([tokens[:, 1:], torch.randint(0, C, (tokens.shape[0], 1), generator=g)], 1)
    t[0, -3:] = -100  # a padded row end
    t[2, 0] = -100
    return t


def _clusters_hit(model, targets):
    """Every cluster of the adaptive softmax has a scored target (so every tail has gradients)."""
    bounds = [0, *model.adaptive.cutoffs]
    kept = targets[targets != -100]
    return all(((kept >= lo) & (kept < hi)).any() for lo, hi in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("name", list(CASES))
def test_target_log_probs_are_the_distribution_at_the_targets(name):
    model = _model(name).eval()
    tokens = _tokens()
    targets = _targets(tokens)
    keep = targets != -100
    with torch.no_grad():
        full = torch.log_softmax(model(tokens), -1)  # (B, L, C)
        got = model(tokens, targets)                 # (B, L)
    assert got.shape == targets.shape and got.dtype == torch.float64
    ref = full.gather(-1, targets.clamp_min(0)[..., None])[..., 0]
    torch.testing.assert_close(got[keep], ref[keep], rtol=1e-10, atol=1e-12)
    assert got[~keep].tolist() == [0.0] * int((~keep).sum())
    if name in ADAPTIVE:  # forward(tokens) gives log-probabilities already
        assert _clusters_hit(model, targets)
        with torch.no_grad():
            torch.testing.assert_close(model(tokens), full, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"targets must be \(B, L\)"):
        model(tokens, targets[:, :-1])


def _twins(name: str, train: bool):
    """A scratch model and a native one with its weights (train or eval mode)."""
    scratch = _model(name).train(train)
    native = _model(name, seed=123).train(train)
    nn.set_impl(native, "native")
    native.load_state_dict(scratch.state_dict())
    return scratch, native


@pytest.mark.parametrize("name", list(CASES))
def test_target_log_probs_scratch_and_native_agree(name):
    scratch, native = _twins(name, train=True)
    tokens = _tokens()
    targets = _targets(tokens)
    weights = torch.randn(*tokens.shape, generator=torch.Generator().manual_seed(2), **F64)

    def run(model):
        model.zero_grad(set_to_none=True)
        out = model(tokens, targets)
        (out * weights).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    ys, gs = run(scratch)
    yn, gn = run(native)
    torch.testing.assert_close(ys, yn, rtol=1e-9, atol=1e-10)
    assert gs.keys() == gn.keys() and gs
    for key in gs:
        torch.testing.assert_close(gs[key], gn[key], rtol=1e-8, atol=1e-10, msg=key)


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_step_scratch_and_native_agree(name):
    scratch, native = _twins(name, train=False)
    tokens = _tokens()
    with torch.no_grad():
        s_state, n_state = scratch.init_state(3), native.init_state(3)
        for i in range(tokens.shape[1]):
            ls, s_state = scratch.step(s_state, tokens[:, i])
            ln, n_state = native.step(n_state, tokens[:, i])
            assert ls.dtype == torch.float32 and ls.shape == (3, C)
            torch.testing.assert_close(ls, ln, rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(ls.exp().sum(-1), torch.ones(3), rtol=0, atol=1e-5)


def test_adaptive_output_layer_replaces_the_linear():
    lstm, tf = _model("lstm_adaptive"), _model("transformer_adaptive")
    assert lstm.output is None and lstm.proj is None and lstm.adaptive.in_features == 8  # the LSTM's width
    assert tf.output is None and tf.adaptive.in_features == 8
    assert tf.adaptive.cutoffs == [3, 6, 10, C] and [p[0].out_features for p in tf.adaptive.tail] == [4, 2, 1]
    names = {k for k in lstm.state_dict() if k.startswith("adaptive.")}
    assert names == {"adaptive.head.weight", "adaptive.tail.0.0.weight", "adaptive.tail.0.1.weight",
                     "adaptive.tail.1.0.weight", "adaptive.tail.1.1.weight"}
    assert not any(k.startswith("output.") for k in lstm.state_dict())
    with pytest.raises(ValueError, match="tie_weights must be False"):
        LSTMLM(C, 8, 8, tie_weights=True, adaptive_cutoffs=[4])


@pytest.mark.parametrize("name", ADAPTIVE)
def test_adaptive_checkpoint_loads_in_either_impl_and_in_torch(name, tmp_path):
    from asrkit.checkpoint import save_checkpoint
    from asrkit.models import load_model

    torch.manual_seed(0)
    model = build_model({"num_classes": C, **CASES[name], **NO_DROPOUT}).eval()
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump({"task": "lm", "model": dict(model.config)}), encoding="utf-8")
    save_checkpoint({"model": model.state_dict()}, exp / "checkpoints" / "best.pt")
    scratch, _ = load_model(exp)
    native, config = load_model(exp, impl="native")
    assert config["model"]["adaptive_cutoffs"] == CASES[name]["adaptive_cutoffs"]
    assert scratch.impl == "scratch" and native.impl == "native" and native.adaptive.impl == "native"
    tokens = _tokens()
    targets = _targets(tokens)
    with torch.no_grad():
        ref = model(tokens)
        torch.testing.assert_close(scratch(tokens), ref, rtol=0, atol=0)
        torch.testing.assert_close(native(tokens), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(native(tokens, targets), scratch(tokens, targets), rtol=1e-5, atol=1e-5)
    # the output layer's weights are torch.nn.AdaptiveLogSoftmaxWithLoss's
    a = model.adaptive
    twin = torch.nn.AdaptiveLogSoftmaxWithLoss(a.in_features, C, a.cutoffs[:-1], div_value=a.div_value)
    twin.load_state_dict({k[len("adaptive."):]: v for k, v in model.state_dict().items() if k.startswith("adaptive.")})
    x = torch.randn(4, a.in_features)
    with torch.no_grad():
        torch.testing.assert_close(twin.log_prob(x), a.log_prob(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ config


def test_lm_config_needs_no_input_dim_and_checks_its_keys():
    cfg = resolve_model_config({"type": "lm_lstm", "num_classes": 10})
    assert "input_dim" not in cfg and cfg["tie_weights"] is True and cfg["impl"] == "scratch"
    assert isinstance(build_model(cfg), LSTMLM)
    assert isinstance(build_model({"type": "lm_transformer", "num_classes": 10, "hidden": 8, "heads": 2}),
                      TransformerLM)
    with pytest.raises(ConfigError, match="model.num_classes: missing"):
        resolve_model_config({"type": "lm_lstm"})
    with pytest.raises(ConfigError, match="model.input_dim: unknown key"):
        resolve_model_config({"type": "lm_lstm", "num_classes": 10, "input_dim": 80})
    with pytest.raises(ConfigError, match="model.pos_enc"):
        resolve_model_config({"type": "lm_transformer", "num_classes": 10, "pos_enc": "rel"})
    with pytest.raises(ConfigError, match="model.heads"):
        resolve_model_config({"type": "lm_transformer", "num_classes": 10, "hidden": 10, "heads": 3})
    with pytest.raises(ConfigError, match="model.embed_dropout"):
        resolve_model_config({"type": "lm_lstm", "num_classes": 10, "embed_dropout": 1.5})
    with pytest.raises(ConfigError, match="model.tie_weights"):
        resolve_model_config({"type": "lm_lstm", "num_classes": 10, "tie_weights": "yes"})
    with pytest.raises(ConfigError, match="model.input_dim: missing"):  # acoustic models still need it
        resolve_model_config({"type": "ctc", "num_classes": 10})


@pytest.mark.parametrize("kind", ["lm_lstm", "lm_transformer"])
def test_adaptive_config_keys(kind):
    base = {"type": kind, "num_classes": 10, "tie_weights": False}
    cfg = resolve_model_config(base)
    assert cfg["adaptive_cutoffs"] is None and cfg["adaptive_div"] == 4.0  # the default: a full softmax
    cfg = resolve_model_config({**base, "adaptive_cutoffs": (2, 6), "adaptive_div": 2})
    assert cfg["adaptive_cutoffs"] == [2, 6] and cfg["adaptive_div"] == 2.0
    assert build_model(cfg).adaptive.cutoffs == [2, 6, 10]
    for bad in ([], [6, 2], [2, 2], [0, 4], [2, 10], [2.5], "2,6", [True]):
        with pytest.raises(ConfigError, match=r"^model.adaptive_cutoffs: expected null or a list of increasing "
                                              r"integers in 1 .. 9 \(below model.num_classes=10, the number"):
            resolve_model_config({**base, "adaptive_cutoffs": bad})
    for bad in (0.5, "4", None, True):
        with pytest.raises(ConfigError, match="^model.adaptive_div: expected a number >= 1"):
            resolve_model_config({**base, "adaptive_cutoffs": [2], "adaptive_div": bad})
    with pytest.raises(ConfigError, match="^model.adaptive_div: 4 leaves cluster 3's tail 0 wide"):
        resolve_model_config({**base, "hidden": 32, "adaptive_cutoffs": [2, 4, 6]})
    # tied weights (the default) and the adaptive softmax: one line naming model.tie_weights
    with pytest.raises(ConfigError) as err:
        resolve_model_config({"type": kind, "num_classes": 10, "adaptive_cutoffs": [2, 6]})
    msg = str(err.value)
    assert msg.startswith("model.tie_weights: must be false with model.adaptive_cutoffs") and "\n" not in msg


def test_tokens_out_of_range_are_refused():
    model = _model("lstm")
    with pytest.raises(ValueError, match="ids in 0 .. 12"):
        model(torch.tensor([[0, 13]]))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model(torch.tensor([0, 1]))
