"""The ``model`` section of a config: defaults, checks, and the resolved form.

``resolve_model_config(cfg)`` returns a full copy of ``cfg`` with every
default filled in, or raises :class:`asrkit.errors.ConfigError` naming the
first bad key (``model.hidden: ...``). The trainer saves the resolved form in
``exp/X/config.yaml``; :func:`asrkit.models.build_model` builds from it.
"""
from __future__ import annotations

from typing import Any, Mapping

from asrkit.errors import ConfigError
from asrkit.nn import IMPLS
from asrkit.nn.seq2seq_attention import ATTENTIONS

__all__ = ["MODEL_TYPES", "LM_TYPES", "DEFAULTS", "REQUIRED", "LM_REQUIRED", "required_keys", "resolve_model_config"]

#: language models (asrkit.models.lm): they read tokens, not features, so they take no input_dim
LM_TYPES = ("lm_lstm", "lm_transformer")
MODEL_TYPES = ("frame_mlp", "ctc", "las", "transformer") + LM_TYPES

#: keys every acoustic model config must give (the trainer fills them in from the data)
REQUIRED = ("type", "input_dim", "num_classes")
#: keys every language model config must give
LM_REQUIRED = ("type", "num_classes")


def required_keys(kind: str) -> tuple[str, ...]:
    """The keys a ``kind`` model config must give."""
    return LM_REQUIRED if kind in LM_TYPES else REQUIRED

#: per type: every optional key and its default
DEFAULTS: dict[str, dict[str, Any]] = {
    "frame_mlp": {
        "impl": "scratch",
        "context": 5,        # +-K frames
        "hidden": 512,       # an int (with `layers`) or a list of widths
        "layers": 3,
        "dropout": 0.1,
    },
    "ctc": {
        "impl": "scratch",
        "subsampling": 4,    # 2 | 4
        "encoder": "lstm",   # lstm | gru | conformer
        "hidden": 256,       # units per direction (lstm/gru), model width (conformer)
        "layers": 3,
        "dropout": 0.1,
        "conv_channels": 32,  # channels of the Conv2d front end
        # conformer only (accepted and ignored by lstm/gru)
        "heads": 4,
        "ff_mult": 4,
        "conv_kernel": 15,
        "pos_enc": "rel",    # rel | abs
        # intermediate CTC (conformer only; a task setting, no parameters of its own): the outputs of
        # these encoder layers (1-based, below the last) also go through the output layer, and the loss
        # is (1 - w) CTC(last layer) + w mean CTC(those layers), w = inter_ctc_weight
        "inter_ctc_weight": 0.0,
        "inter_ctc_layers": None,  # null: the middle layer, layers // 2
        "inter_ctc_condition": False,  # self-conditioned CTC: tapped posteriors fed back (adds a Linear)
    },
    # Listen, Attend and Spell (asrkit.models.las); sizes for the tiny corpus on a CPU
    "las": {
        "impl": "scratch",
        "frontend": "none",            # none | conv2d
        "frontend_subsampling": 2,     # 2 | 4 (conv2d front end only)
        "conv_channels": 32,           # conv2d front end only
        "listener_hidden": 128,        # LSTM units per direction
        "listener_layers": 1,          # plain BiLSTM layers before the pyramid
        "pyramid_layers": 3,           # pyramidal BiLSTM layers, each halves time (3: x8)
        "dropout": 0.1,
        "locked_dropout": True,        # one dropout mask per utterance between listener layers
        "attention": "location",       # dot | scaled_dot | location
        "attention_dim": 128,
        "location_channels": 8,        # location only
        "location_kernel": 15,         # location only, odd
        "embed_dim": 128,              # token embedding, also the output MLP's width
        "speller_hidden": 256,
        "speller_layers": 1,
        # task settings (read by the training task, not the model's layers)
        "ctc_weight": 0.0,             # > 0 adds a CTC head on the listener
        "label_smoothing": 0.1,
        "tf_start": 1.0,               # teacher-forcing rate at the first epoch ...
        "tf_end": 0.8,                 # ... decaying linearly to this one ...
        "tf_decay_epochs": 10,         # ... over this many epochs
    },
    # joint CTC/attention Transformer (asrkit.models.transformer)
    "transformer": {
        "impl": "scratch",
        "encoder": "transformer",      # transformer | conformer
        "subsampling": 4,              # 2 | 4
        "conv_channels": 32,
        "hidden": 144,                 # model width d
        "heads": 4,
        "ff_mult": 4,                  # feed-forward width ff_mult * d
        "encoder_layers": 4,
        "decoder_layers": 2,
        "dropout": 0.1,
        # conformer only (accepted and ignored by the transformer encoder)
        "conv_kernel": 15,
        "pos_enc": "rel",              # rel | abs
        # task settings
        "ctc_weight": 0.3,             # loss = w CTC + (1 - w) attention; > 0 adds the CTC head
        "label_smoothing": 0.1,
    },
    # AWD-LSTM-style LSTM LM (asrkit.models.lm.LSTMLM)
    "lm_lstm": {
        "impl": "scratch",
        "embed_dim": 256,              # E, the embedding width
        "hidden": 256,                 # H, the width of every LSTM layer
        "layers": 2,
        "dropout": 0.2,                # locked dropout on the last LSTM layer's output
        "embed_dropout": 0.1,          # drops whole word types of the embedding table
        "input_dropout": 0.2,          # locked dropout on the embeddings
        "hidden_dropout": 0.2,         # locked dropout between LSTM layers
        "tie_weights": True,           # output weight = embedding table (+ Linear(H, E) when H != E)
        "adaptive_cutoffs": None,      # null: full softmax; [2000, 6000]: adaptive softmax (tie_weights false)
        "adaptive_div": 4.0,           # cluster i's tail is hidden // adaptive_div^(i+1) wide
    },
    # decoder-only Transformer LM (asrkit.models.lm.TransformerLM)
    "lm_transformer": {
        "impl": "scratch",
        "hidden": 256,                 # model width d
        "heads": 4,
        "ff_mult": 4,                  # feed-forward width ff_mult * d
        "layers": 4,
        "dropout": 0.1,
        "pos_enc": "sinusoidal",       # sinusoidal | learned
        "max_len": 512,                # the longest block; step keeps this many tokens of context
        "tie_weights": True,
        "adaptive_cutoffs": None,      # null: full softmax; [2000, 6000]: adaptive softmax (tie_weights false)
        "adaptive_div": 4.0,           # cluster i's tail is hidden // adaptive_div^(i+1) wide
    },
}

_CONFORMER_KEYS = ("heads", "ff_mult", "conv_kernel", "pos_enc")


def _bad(key: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"model.{key}: expected {what}, got {value!r}")


def _int(cfg: Mapping[str, Any], key: str, lo: int = 1) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(key, "an integer >= %d" % lo, v)
    return v


def _choice(cfg: Mapping[str, Any], key: str, choices: tuple) -> Any:
    v = cfg[key]
    if isinstance(v, bool) or v not in choices:
        raise ConfigError(f"model.{key}: expected one of {', '.join(map(str, choices))}, got {v!r}")
    return v


def _prob(cfg: Mapping[str, Any], key: str) -> float:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise _bad(key, "a number in [0, 1)", v)
    return float(v)


def _number(cfg: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise _bad(key, f"a number in [{lo:g}, {hi:g}]", v)
    return float(v)


def _bool(cfg: Mapping[str, Any], key: str) -> bool:
    v = cfg[key]
    if not isinstance(v, bool):
        raise _bad(key, "true or false", v)
    return v


def _check_heads_ff(out: dict[str, Any]) -> None:
    _int(out, "heads")
    if out["hidden"] % out["heads"]:
        raise ConfigError(f"model.heads: {out['heads']} does not divide model.hidden={out['hidden']}")
    ff = out["ff_mult"]
    if isinstance(ff, bool) or not isinstance(ff, (int, float)) or ff <= 0 or int(ff * out["hidden"]) < 1:
        raise _bad("ff_mult", "a positive number", ff)


def _check_conformer(out: dict[str, Any]) -> None:
    k = _int(out, "conv_kernel")
    if k % 2 == 0:
        raise _bad("conv_kernel", "an odd integer", k)
    _choice(out, "pos_enc", ("rel", "abs"))


def _check_las(out: dict[str, Any]) -> None:
    _choice(out, "frontend", ("none", "conv2d"))
    _choice(out, "frontend_subsampling", (2, 4))
    _int(out, "conv_channels")
    _int(out, "listener_hidden")
    _int(out, "listener_layers")
    _int(out, "pyramid_layers", 0)
    _bool(out, "locked_dropout")
    _choice(out, "attention", ATTENTIONS)
    _int(out, "attention_dim")
    _int(out, "location_channels")
    k = _int(out, "location_kernel")
    if k % 2 == 0:
        raise _bad("location_kernel", "an odd integer", k)
    _int(out, "embed_dim")
    _int(out, "speller_hidden")
    _int(out, "speller_layers")
    out["tf_start"] = _number(out, "tf_start", 0, 1)
    out["tf_end"] = _number(out, "tf_end", 0, 1)
    _int(out, "tf_decay_epochs", 0)


def _check_transformer(out: dict[str, Any]) -> None:
    _choice(out, "encoder", ("transformer", "conformer"))
    _choice(out, "subsampling", (2, 4))
    _int(out, "conv_channels")
    _int(out, "hidden")
    _check_heads_ff(out)
    _int(out, "encoder_layers")
    _int(out, "decoder_layers")
    if out["encoder"] == "conformer":
        _check_conformer(out)


def _check_lm(out: dict[str, Any]) -> None:
    _int(out, "hidden")
    _int(out, "layers")
    _bool(out, "tie_weights")
    if out["type"] == "lm_lstm":
        _int(out, "embed_dim")
        for key in ("embed_dropout", "input_dropout", "hidden_dropout"):
            out[key] = _prob(out, key)
    else:
        _check_heads_ff(out)
        _choice(out, "pos_enc", ("sinusoidal", "learned"))
        _int(out, "max_len")
    _check_adaptive(out)


def _check_adaptive(out: dict[str, Any]) -> None:
    """``adaptive_cutoffs``: null or increasing ids in 1 .. num_classes - 1, with untied weights;
    ``adaptive_div`` >= 1, leaving every cluster's tail at least one unit wide."""
    div = out["adaptive_div"]
    if isinstance(div, bool) or not isinstance(div, (int, float)) or not div >= 1:
        raise _bad("adaptive_div", "a number >= 1", div)
    out["adaptive_div"] = float(div)
    cut, c = out["adaptive_cutoffs"], out["num_classes"]
    if cut is None:
        return
    if (not isinstance(cut, (list, tuple)) or not cut
            or any(isinstance(v, bool) or not isinstance(v, int) for v in cut)
            or any(b <= a for a, b in zip(cut, cut[1:])) or cut[0] < 1 or cut[-1] >= c):
        raise _bad("adaptive_cutoffs", f"null or a list of increasing integers in 1 .. {c - 1} "
                                       f"(below model.num_classes={c}, the number of units)", cut)
    if out["tie_weights"]:
        raise ConfigError("model.tie_weights: must be false with model.adaptive_cutoffs (the adaptive softmax has "
                          "no output weight to share with the embedding table); set model.tie_weights=false")
    narrow = [i + 1 for i in range(len(cut)) if int(out["hidden"] // div ** (i + 1)) < 1]
    if narrow:
        raise ConfigError(f"model.adaptive_div: {div:g} leaves cluster {narrow[0]}'s tail 0 wide "
                          f"(model.hidden={out['hidden']} // {div:g}^{narrow[0]}); use a smaller adaptive_div "
                          f"or fewer adaptive_cutoffs")
    out["adaptive_cutoffs"] = list(cut)


def resolve_model_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``cfg`` (the ``model`` section) and return it with the defaults filled in.

    For ``frame_mlp`` the resolved ``hidden`` is always a list of widths (and
    ``layers`` its length). Raises ConfigError on a missing, unknown or bad key.
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model: expected a mapping of model settings, got {type(cfg).__name__}")
    if "type" not in cfg:
        raise ConfigError("model.type: missing (required for every model)")
    kind = _choice(cfg, "type", MODEL_TYPES)
    required = required_keys(kind)
    for key in required:
        if key not in cfg:
            what = "every language model" if kind in LM_TYPES else "every model"
            raise ConfigError(f"model.{key}: missing (required for {what})")
    known = set(required) | set(DEFAULTS[kind])
    for key in cfg:
        if key not in known:
            raise ConfigError(f"model.{key}: unknown key for a {kind!r} model "
                              f"(known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {key: cfg[key] for key in required}  # required keys first, then the rest in order
    out.update({key: cfg.get(key, default) for key, default in DEFAULTS[kind].items()})
    out["impl"] = _choice(out, "impl", IMPLS)
    if kind not in LM_TYPES:
        _int(out, "input_dim")
    _int(out, "num_classes", 1 if kind == "frame_mlp" else 2)  # id 0 (blank / sos / eos) + one unit
    out["dropout"] = _prob(out, "dropout")
    if kind in LM_TYPES:
        _check_lm(out)
    elif kind in ("las", "transformer"):
        out["ctc_weight"] = _prob(out, "ctc_weight")
        out["label_smoothing"] = _prob(out, "label_smoothing")
        (_check_las if kind == "las" else _check_transformer)(out)
    elif kind == "frame_mlp":
        _int(out, "context", 0)
        hidden = out["hidden"]
        if isinstance(hidden, (list, tuple)):
            if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
                raise _bad("hidden", "a positive integer or a non-empty list of them", hidden)
            if "layers" in cfg and cfg["layers"] != len(hidden):
                raise ConfigError(f"model.layers: {cfg['layers']!r} does not match the {len(hidden)} "
                                  f"widths in model.hidden; drop model.layers or make them agree")
            out["hidden"] = list(hidden)
        else:
            _int(out, "hidden")
            out["hidden"] = [hidden] * _int(out, "layers")
        out["layers"] = len(out["hidden"])
    else:
        _choice(out, "subsampling", (2, 4))
        _choice(out, "encoder", ("lstm", "gru", "conformer"))
        _int(out, "hidden")
        _int(out, "layers")
        _int(out, "conv_channels")
        if out["encoder"] == "conformer":
            _check_heads_ff(out)
            _check_conformer(out)
        _check_inter_ctc(out)
    return out


def _check_inter_ctc(out: dict[str, Any]) -> None:
    """``inter_ctc_weight`` in [0, 1); ``inter_ctc_layers`` null (the middle layer) or 1-based layers below
    the last, resolved to a list; only the conformer encoder has per-layer outputs to tap."""
    w = out["inter_ctc_weight"] = _prob(out, "inter_ctc_weight")
    layers, n = out["inter_ctc_layers"], out["layers"]
    if _bool(out, "inter_ctc_condition") and w == 0:
        raise ConfigError("model.inter_ctc_condition: self-conditioning feeds back the intermediate CTC "
                          "layers' posteriors; set model.inter_ctc_weight > 0 (e.g. 0.3) or turn it off")
    if w == 0:
        if layers is not None:
            out["inter_ctc_layers"] = _inter_layers(layers, n)
        return
    if out["encoder"] != "conformer":
        raise ConfigError(f"model.inter_ctc_weight: intermediate CTC needs the conformer encoder "
                          f"(model.encoder={out['encoder']!r}); set model.inter_ctc_weight=0")
    if layers is None:
        if n < 2:
            raise ConfigError("model.inter_ctc_weight: intermediate CTC needs model.layers >= 2")
        layers = [n // 2]
    out["inter_ctc_layers"] = _inter_layers(layers, n)


def _inter_layers(layers: Any, n: int) -> list[int]:
    ok = (isinstance(layers, (list, tuple)) and len(layers) > 0
          and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v < n for v in layers)
          and len(set(layers)) == len(layers))
    if not ok:
        raise _bad("inter_ctc_layers", f"null or a list of distinct layers in 1 .. {n - 1} "
                                       f"(below model.layers={n})", layers)
    return sorted(layers)
