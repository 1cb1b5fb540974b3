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

__all__ = ["MODEL_TYPES", "DEFAULTS", "REQUIRED", "resolve_model_config"]

MODEL_TYPES = ("frame_mlp", "ctc")

#: keys every model config must give (the trainer fills them in from the data)
REQUIRED = ("type", "input_dim", "num_classes")

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


def resolve_model_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``cfg`` (the ``model`` section) and return it with the defaults filled in.

    For ``frame_mlp`` the resolved ``hidden`` is always a list of widths (and
    ``layers`` its length). Raises ConfigError on a missing, unknown or bad key.
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model: expected a mapping of model settings, got {type(cfg).__name__}")
    for key in REQUIRED:
        if key not in cfg:
            raise ConfigError(f"model.{key}: missing (required for every model)")
    kind = _choice(cfg, "type", MODEL_TYPES)
    known = set(REQUIRED) | set(DEFAULTS[kind])
    for key in cfg:
        if key not in known:
            raise ConfigError(f"model.{key}: unknown key for a {kind!r} model "
                              f"(known: {', '.join(sorted(known))})")
    out: dict[str, Any] = {key: cfg[key] for key in REQUIRED}  # required keys first, then the rest in order
    out.update({key: cfg.get(key, default) for key, default in DEFAULTS[kind].items()})
    out["impl"] = _choice(out, "impl", IMPLS)
    _int(out, "input_dim")
    _int(out, "num_classes", 2 if kind == "ctc" else 1)
    out["dropout"] = _prob(out, "dropout")
    if kind == "frame_mlp":
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
            _int(out, "heads")
            if out["hidden"] % out["heads"]:
                raise ConfigError(f"model.heads: {out['heads']} does not divide model.hidden={out['hidden']}")
            ff = out["ff_mult"]
            if isinstance(ff, bool) or not isinstance(ff, (int, float)) or ff <= 0 or int(ff * out["hidden"]) < 1:
                raise _bad("ff_mult", "a positive number", ff)
            k = _int(out, "conv_kernel")
            if k % 2 == 0:
                raise _bad("conv_kernel", "an odd integer", k)
            _choice(out, "pos_enc", ("rel", "abs"))
    return out
