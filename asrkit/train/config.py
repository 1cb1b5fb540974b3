"""Training configs: defaults, YAML files, dotted overrides, validation.

A config is a nested dict with the sections ``task``, ``model``, ``data``,
``features``, ``units``, ``optim`` and ``train``. :func:`load_config` builds
it in this order, later winning::

    defaults of the task  <-  conf/*.yaml (--conf)  <-  key=value overrides

Overrides use dotted keys and YAML values: ``model.hidden=512``,
``optim.lr=1e-3``, ``data.cmvn=null``, ``model.hidden=[512,512]``. Every key of
the trainer's own sections (data, features, units, optim, train) is checked
here (unknown key, wrong type, value out of its set) before any work, with a
:class:`~asrkit.errors.ConfigError` naming it; the ``model`` section is checked
by the task (:meth:`asrkit.tasks.base.Task.check_config`), which the trainer
calls before it reads any features.

The trainer's sections are the same for every task; a task gives its own
defaults over them and its whole ``model`` section
(:meth:`asrkit.tasks.base.Task.defaults`), its own rules on them
(``units.kind``, ``train.metric``: :meth:`asrkit.tasks.base.Task.validate`),
and may add keys of its own to them (:meth:`asrkit.tasks.base.Task.config_keys`,
e.g. the LM task's ``data.bptt``), which only its configs have.
The task is looked up by name in :mod:`asrkit.tasks`' registry; an unknown
name is a :class:`~asrkit.errors.ConfigError` listing the known tasks.
"""
from __future__ import annotations

import copy
import os
from typing import Any

import yaml

from asrkit.config import read_yaml
from asrkit.errors import ConfigError, quote
from asrkit.tasks import get_task

SECTIONS = ("task", "model", "data", "features", "units", "optim", "train")

_NUM = (int, float)
_OPT_INT = (int, type(None))

#: Default of every trainer key: (value, allowed types, allowed values or None).
_SCHEMA: dict[str, dict[str, tuple[Any, tuple, tuple | None]]] = {
    "data": {
        "cmvn": ("global", (str, type(None)), ("global", "speaker", "utterance", None)),
        "norm_vars": (True, (bool,), None),
        "max_frames": (20000, (int,), None),        # padded frames (B x T_max) per global batch
        "buckets": (10, (int,), None),              # length buckets (quantiles of utterance length)
        "max_utt_frames": (None, _OPT_INT, None),   # longer training utterances are left out
        "shuffle": (True, (bool,), None),
        "num_workers": (0, (int,), None),
        "text": (None, (str, type(None)), None),     # explicit targets file for ctc (default: the store's)
        "dev_text": (None, (str, type(None)), None),
    },
    "features": {
        "specaugment": (None, (bool, type(None)), None),  # None: off (each task sets its default)
        "freq_masks": (2, (int,), None),
        "freq_width": (15, (int,), None),
        "time_masks": (2, (int,), None),
        "time_width": (40, (int,), None),
        "time_ratio": (0.05, _NUM, None),           # at most this share of frames per time mask
        "vtlp": (False, (bool,), None),             # vocal tract length perturbation (fbank features)
        "vtlp_warp": ([0.9, 1.1], (list,), None),   # warp factor alpha ~ U[low, high] per utterance
        "vtlp_low": (100.0, _NUM, None),            # Hz: the warp's low cutoff (Kaldi --vtln-low)
        "vtlp_high": (-500.0, _NUM, None),          # Hz, <= 0: below Nyquist (Kaldi --vtln-high)
        "time_stretch": (False, (bool,), None),     # speed perturbation of the feature frames
        "stretch_rate": ([0.9, 1.1], (list,), None),  # rate ~ U[low, high]; > 1: fewer frames
    },
    "units": {
        "kind": (None, (str, type(None)), None),     # phone | char | bpe | ali: the task says which
        "dir": (None, (str, type(None)), None),      # an existing units dir (asrkit tokenizer train)
        "vocab_size": (200, (int,), None),           # bpe only
        "lexicon": (None, (str, type(None)), None),  # phone units from words: lexicon file (default CMU)
    },
    "optim": {
        "lr": (1e-3, _NUM, None),
        "betas": ([0.9, 0.98], (list,), None),
        "eps": (1e-8, _NUM, None),
        "weight_decay": (1e-2, _NUM, None),
        "scheduler": ("cosine", (str,), ("cosine", "plateau", "constant", "noam")),
        "warmup_steps": (200, (int,), None),
        "min_lr": (1e-5, _NUM, None),
        "plateau_factor": (0.5, _NUM, None),
        "plateau_patience": (1, (int,), None),
        "grad_clip": (5.0, (int, float, type(None)), None),
    },
    "train": {
        "epochs": (20, (int,), None),
        "max_steps": (None, _OPT_INT, None),         # stop after this many updates (all epochs)
        "seed": (0, (int,), None),
        "device": ("auto", (str,), ("auto", "cpu", "cuda")),
        "threads": (None, _OPT_INT, None),           # CPU threads per process (None: torch's default)
        "precision": ("auto", (str,), ("auto", "fp32", "bf16", "fp16")),
        "patience": (None, _OPT_INT, None),          # early stopping: epochs without a better dev metric
        "metric": ("auto", (str,), None),           # auto | loss | a dev metric of the task
        "log_every": (10, (int,), None),
        "save_every_steps": (0, (int,), None),       # mid-epoch last.pt every N updates (0: off)
        "save_every_min": (10.0, _NUM, None),        # ... and every N minutes (0: off)
        "nan_limit": (10, (int,), None),
        "keep_epochs": (None, _OPT_INT, None),       # keep only the last N epoch-*.pt (None: all)
        "tensorboard": (True, (bool,), None),
        "init": (None, (str, type(None)), None),     # start from these weights (a checkpoint or an exp dir)
    },
}

def schema(task: str) -> dict[str, dict[str, tuple[Any, tuple, tuple | None]]]:
    """Every key of the trainer's sections in a ``task`` config: ``{section: {key:
    (default, allowed types, allowed values or None)}}``, the trainer's keys and
    the task's own (:meth:`asrkit.tasks.base.Task.config_keys`)."""
    cls = get_task(task)
    out = {sec: dict(keys) for sec, keys in _SCHEMA.items()}
    for sec, keys in cls.config_keys().items():
        if sec not in out:
            raise ValueError(f"{cls.__name__}.config_keys: '{sec}' is not a section of the trainer's")
        for k, spec in keys.items():
            if k in out[sec]:
                raise ValueError(f"{cls.__name__}.config_keys: '{sec}.{k}' is already a trainer key")
            out[sec][k] = spec
    return out


def defaults(task: str) -> dict[str, Any]:
    """The full default config of ``task``: the trainer's defaults, the task's
    own over them (:meth:`asrkit.tasks.base.Task.defaults`) and its model section."""
    cls = get_task(task)
    own = cls.defaults()
    cfg: dict[str, Any] = {"task": task, "model": copy.deepcopy(own.get("model", {}))}
    for sec, keys in schema(task).items():
        cfg[sec] = {k: copy.deepcopy(v[0]) for k, v in keys.items()}
        for k, v in own.get(sec, {}).items():
            if k not in keys:
                raise ValueError(f"{cls.__name__}.defaults: '{sec}.{k}' is not a trainer key")
            cfg[sec][k] = copy.deepcopy(v)
    return cfg


def with_new_defaults(saved: dict, task: str) -> dict:
    """A copy of ``saved`` (a run's config, perhaps written by an older asrkit)
    with the default of every section key it lacks: a key added later, whose
    default is what the older code did. The model section is kept as saved."""
    cfg = copy.deepcopy(saved)
    for sec, keys in defaults(task).items():
        if sec == "model" or not isinstance(keys, dict) or not isinstance(cfg.get(sec), dict):
            continue
        for k, v in keys.items():
            cfg[sec].setdefault(k, v)
    return cfg


def parse_value(text: str) -> Any:
    """A command-line value as YAML (``1e-3`` -> float, ``null`` -> None, ``[1,2]`` -> list)."""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads "1e-3" as a string; accept it as a number.
    if isinstance(v, str):
        try:
            return float(v) if any(c in v for c in ".eE") else v
        except ValueError:
            return v
    return v


def _merge(base: dict, update: dict, where: str, strict_sections: bool) -> None:
    for k, v in update.items():
        path = f"{where}.{k}" if where else str(k)
        if where == "" and k not in SECTIONS:
            raise ConfigError(f"unknown config section {quote(k)} (sections: {', '.join(SECTIONS)})")
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v, path, strict_sections)
        else:
            base[k] = copy.deepcopy(v)


def set_dotted(cfg: dict, key: str, value: Any) -> None:
    """``cfg[a][b] = value`` for ``key="a.b"``; unknown sections raise ConfigError."""
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"bad config key {quote(key)}")
    if parts[0] not in SECTIONS:
        raise ConfigError(f"unknown config key {quote(key)} (sections: {', '.join(SECTIONS)})")
    if parts[0] == "task":
        if len(parts) != 1:
            raise ConfigError(f"unknown config key {quote(key)}")
        cfg["task"] = value
        return
    d = cfg
    for p in parts[:-1]:
        nxt = d.get(p)
        if nxt is None:
            nxt = d[p] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"config key {quote(key)}: '{p}' is not a section")
        d = nxt
    d[parts[-1]] = value


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """``["a.b=1", ...]`` -> ``[("a.b", 1), ...]``; a malformed item raises ConfigError."""
    out = []
    for it in items:
        if "=" not in it:
            raise ConfigError(f"override '{it}' is not key=value (e.g. model.hidden=512)")
        k, v = it.split("=", 1)
        out.append((k.strip(), parse_value(v)))
    return out


def load_config(task: str, conf: str | os.PathLike | None = None,
                overrides: list[str] | list[tuple[str, Any]] | None = None, base: dict | None = None) -> dict:
    """Defaults of ``task`` (or ``base``, e.g. the saved config of a run to
    resume, with the defaults of keys added since it was saved), then the YAML
    file ``conf``, then the overrides; validated (see :func:`validate`).
    Returns the config dict."""
    cfg = defaults(task) if base is None else with_new_defaults(base, task)
    if conf is not None:
        data = read_yaml(conf)
        if "task" in data and data["task"] != task:
            raise ConfigError(f"{conf}: is a config for task '{data['task']}', not '{task}'")
        if "model" in data and isinstance(data["model"], dict):
            # a conf file's model section replaces the default one (other model types have other keys)
            if data["model"].get("type", cfg["model"]["type"]) != cfg["model"]["type"]:
                cfg["model"] = {}
        _merge(cfg, data, "", True)
    ov = overrides or []
    pairs = parse_overrides(ov) if ov and isinstance(ov[0], str) else list(ov)  # type: ignore[arg-type]
    for k, v in pairs:
        set_dotted(cfg, k, v)
    if cfg["task"] != task:
        raise ConfigError(f"task={cfg['task']!r} does not match 'asrkit train {task}'")
    validate(cfg)
    return cfg


def _number(text: str, real: bool) -> Any:
    """A quoted number (``"0.5"``, ``"512"``; YAML 1.1 also reads 1e-3 as a
    string) as the number a number-typed key takes: a finite float for a real
    key, an int for an integer key. Anything else stays the string, for the
    type check to name."""
    import math

    try:
        if real:
            x = float(text)
            return x if math.isfinite(x) else text
        return int(text.strip())
    except ValueError:
        return text


def validate(cfg: dict) -> None:
    """Check every trainer key: known, right type, allowed value, sane range."""
    task = get_task(cfg.get("task"))
    for sec in SECTIONS:
        if sec not in cfg:
            raise ConfigError(f"config has no '{sec}' section")
    if not isinstance(cfg["model"], dict):
        raise ConfigError("config key 'model' must be a mapping")
    for sec, keys in schema(cfg["task"]).items():
        section = cfg[sec]
        if not isinstance(section, dict):
            raise ConfigError(f"config key '{sec}' must be a mapping")
        for k, v in section.items():
            if k not in keys:
                known = ", ".join(sorted(keys))
                raise ConfigError(f"unknown config key '{sec}.{k}' (known: {known})")
            _, types, choices = keys[k]
            if isinstance(v, str) and (float in types or int in types):
                v = section[k] = _number(v, float in types)
            ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            if not ok:
                tn = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise ConfigError(f"config key '{sec}.{k}': expected {tn}, got {quote(v)}")
            if choices is not None and v not in choices:
                shown = ", ".join("null" if c is None else str(c) for c in choices)
                raise ConfigError(f"config key '{sec}.{k}': must be one of {shown} (got {quote(v)})")
    d, o, t, f = cfg["data"], cfg["optim"], cfg["train"], cfg["features"]
    positive = [("data.max_frames", d["max_frames"]), ("data.buckets", d["buckets"]),
                ("train.epochs", t["epochs"]), ("train.log_every", t["log_every"]),
                ("train.nan_limit", t["nan_limit"]), ("units.vocab_size", cfg["units"]["vocab_size"])]
    for name, v in positive:
        if v <= 0:
            raise ConfigError(f"config key '{name}': must be > 0 (got {v})")
    for name, v in [("optim.lr", o["lr"]), ("optim.eps", o["eps"]), ("optim.weight_decay", o["weight_decay"]),
                    ("optim.min_lr", o["min_lr"]), ("optim.warmup_steps", o["warmup_steps"]),
                    ("data.num_workers", d["num_workers"]), ("train.save_every_steps", t["save_every_steps"]),
                    ("train.save_every_min", t["save_every_min"]), ("features.freq_masks", f["freq_masks"]),
                    ("features.freq_width", f["freq_width"]), ("features.time_masks", f["time_masks"]),
                    ("features.time_width", f["time_width"]), ("features.time_ratio", f["time_ratio"])]:
        if v < 0:
            raise ConfigError(f"config key '{name}': must be >= 0 (got {v})")
    if o["lr"] == 0:
        raise ConfigError("config key 'optim.lr': must be > 0")
    if len(o["betas"]) != 2 or not all(isinstance(b, _NUM) and 0 <= b < 1 for b in o["betas"]):
        raise ConfigError(f"config key 'optim.betas': expected two numbers in [0, 1) (got {o['betas']!r})")
    if o["grad_clip"] is not None and o["grad_clip"] <= 0:
        raise ConfigError(f"config key 'optim.grad_clip': must be > 0 or null (got {o['grad_clip']})")
    if o["scheduler"] == "noam" and o["warmup_steps"] == 0:
        raise ConfigError("config key 'optim.warmup_steps': optim.scheduler=noam needs a warmup (> 0)")
    if not 0 < o["plateau_factor"] < 1:
        raise ConfigError(f"config key 'optim.plateau_factor': must be in (0, 1) (got {o['plateau_factor']})")
    for name in ("max_steps", "patience", "keep_epochs", "threads"):
        if t[name] is not None and t[name] <= 0:
            raise ConfigError(f"config key 'train.{name}': must be > 0 or null (got {t[name]})")
    if d["max_utt_frames"] is not None and d["max_utt_frames"] <= 0:
        raise ConfigError(f"config key 'data.max_utt_frames': must be > 0 or null (got {d['max_utt_frames']})")
    task(cfg).validate()
    if "type" not in cfg["model"]:
        raise ConfigError("config key 'model.type' is missing")


def save_config(cfg: dict, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically)."""
    from asrkit.io import atomic_write

    with atomic_write(path) as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
