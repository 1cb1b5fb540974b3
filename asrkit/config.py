"""Reading YAML configs and the resolved config saved in an exp dir.

Below both :mod:`asrkit.train` (which writes ``EXP/config.yaml``) and
:mod:`asrkit.decode` / :mod:`asrkit.pipeline` (which read it back), so a
decoder never imports the trainer to learn how a model was built.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from asrkit.errors import ConfigError, InputError
from asrkit.io import read_text

__all__ = ["CONFIG_FILE", "load_saved_config", "read_yaml"]

#: The resolved config in an exp dir.
CONFIG_FILE = "config.yaml"


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path`` (InputError / ConfigError naming the file)."""
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config sections at the top")
    return data


def load_saved_config(exp: str | os.PathLike) -> dict:
    """The resolved ``config.yaml`` of an exp dir."""
    p = Path(exp) / CONFIG_FILE
    if not p.exists():
        raise InputError(f"{p}: no such file (is {exp} an asrkit exp dir?)")
    return read_yaml(p)
