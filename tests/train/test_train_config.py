"""Configs: defaults, YAML, dotted overrides, validation naming the bad key."""
from __future__ import annotations

from pathlib import Path

import pytest

from asrkit.errors import ConfigError
from asrkit.train import check_config, load_config
from asrkit.train.config import parse_value

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("name,task", [("frame_mlp", "frame"), ("ctc_bilstm", "ctc"), ("ctc_conformer", "ctc")])
def test_shipped_confs_are_valid(name, task):
    cfg = load_config(task, CONF / f"{name}.yaml")
    check_config(cfg)
    assert cfg["task"] == task
    assert isinstance(cfg["optim"]["lr"], float)


def test_overrides_win_over_file_and_defaults():
    cfg = load_config("ctc", CONF / "ctc_bilstm.yaml",
                      ["model.hidden=512", "optim.lr=1e-3", "data.cmvn=null", "optim.betas=[0.9,0.99]",
                       "features.specaugment=false", "units.kind=char"])
    assert cfg["model"]["hidden"] == 512 and cfg["optim"]["lr"] == 1e-3
    assert cfg["data"]["cmvn"] is None and cfg["optim"]["betas"] == [0.9, 0.99]
    assert cfg["features"]["specaugment"] is False and cfg["units"]["kind"] == "char"
    assert cfg["model"]["encoder"] == "lstm"  # from the file


def test_defaults_per_task():
    assert load_config("ctc")["features"]["specaugment"] is True
    assert load_config("frame")["features"]["specaugment"] is False
    assert load_config("frame")["units"]["kind"] == "ali"


def test_parse_value():
    assert parse_value("1e-3") == 1e-3 and parse_value("3") == 3 and parse_value("null") is None
    assert parse_value("[1, 2]") == [1, 2] and parse_value("conf/x.yaml") == "conf/x.yaml"


@pytest.mark.parametrize("override,match", [
    ("optim.lrr=1", "optim.lrr"),
    ("optimizer.lr=1", "optimizer.lr"),
    ("optim.lr=fast", "optim.lr"),
    ("optim.lr=-1", "optim.lr"),
    ("data.cmvn=global2", "data.cmvn"),
    ("optim.scheduler=linear", "optim.scheduler"),
    ("train.epochs=0", "train.epochs"),
    ("train.device=tpu", "train.device"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("units.kind=ali", "units.kind"),
    ("train.metric=acc", "train.metric"),
    ("data.shuffle=3", "data.shuffle"),
])
def test_bad_keys_and_values_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("ctc", None, [override])


@pytest.mark.parametrize("override,match", [
    ("model.hiden=3", "model.hiden"),
    ("model.encoder=transformer", "model.encoder"),
    ("model.type=frame_mlp", "model"),
])
def test_bad_model_keys_fail_in_check_config(override, match):
    with pytest.raises(ConfigError, match=match):
        check_config(load_config("ctc", None, [override]))


def test_not_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        load_config("ctc", None, ["model.hidden"])


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lr: [\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config("ctc", bad)
    other = tmp_path / "frame.yaml"
    other.write_text("task: frame\n")
    with pytest.raises(ConfigError, match="task 'frame'"):
        load_config("ctc", other)
    unknown = tmp_path / "u.yaml"
    unknown.write_text("trainer: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="trainer"):
        load_config("ctc", unknown)
