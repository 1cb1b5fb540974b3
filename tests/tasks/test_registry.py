"""The task registry: every registered task has a valid default config and a
CLI command; names are checked; the trainer's config comes from the task."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asrkit.errors import ConfigError
from asrkit.tasks import TASKS, CTCTask, FrameTask, Task, get_task, register_task, task_names
from asrkit.train import check_config, load_config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def test_builtin_tasks_are_registered_in_order():
    assert task_names()[:2] == ("frame", "ctc")
    assert get_task("frame") is FrameTask and get_task("ctc") is CTCTask


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_a_valid_default_config_and_help(name):
    cls = get_task(name)
    assert cls.name == name and cls.help and cls.train_needs and cls.model_types
    cfg = load_config(name)
    check_config(cfg)
    assert cfg["task"] == name and cfg["model"]["type"] in cls.model_types
    metric, mode = cls(cfg).metric()
    assert metric in (*cls.metrics, "loss") and mode in ("max", "min")


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_conf_example_loads(name):
    confs = [ROOT / w.rstrip(",") for w in get_task(name).conf_example.split() if w.startswith("conf/")]
    assert confs
    for conf in confs:
        check_config(load_config(name, conf))


def test_unknown_task():
    with pytest.raises(ConfigError, match=r"^unknown task 'nope' \(known tasks: frame, ctc"):
        get_task("nope")
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        load_config("nope")
    cfg = load_config("ctc")
    cfg["task"] = "nope"
    with pytest.raises(ConfigError, match="known tasks"):
        check_config(cfg)


def test_register_checks_names():
    class Bad(Task):
        name = "not a name"

    with pytest.raises(ValueError, match="identifier"):
        register_task(Bad)

    class Other(Task):
        name = "ctc"

    with pytest.raises(ValueError, match="registered twice"):
        register_task(Other)
    assert TASKS["ctc"] is CTCTask
    with pytest.raises(TypeError, match="abstract"):  # a task without its hooks is not a task
        Other(load_config("ctc"))


def test_task_defaults_name_trainer_keys_only(monkeypatch):
    class Typo(FrameTask):
        name = "typo"

        @classmethod
        def defaults(cls):
            return {"model": {"type": "frame_mlp"}, "optim": {"warmup": 5}}

    monkeypatch.setitem(TASKS, "typo", Typo)
    with pytest.raises(ValueError, match="'optim.warmup' is not a trainer key"):
        load_config("typo")


@pytest.mark.parametrize("over,match", [
    (["units.kind=ali"], "units.kind"),
    (["train.metric=acc"], "train.metric"),
    (["train.metric=per", "units.kind=char"], "needs phone units"),
    (["train.metric=wer"], "needs char or bpe units"),
])
def test_token_task_rules(over, match):
    with pytest.raises(ConfigError, match=match):
        load_config("ctc", None, over)


def test_auto_metric_follows_the_units():
    assert CTCTask(load_config("ctc")).metric() == ("per", "min")
    assert CTCTask(load_config("ctc", None, ["units.kind=bpe"])).metric() == ("wer", "min")
    assert FrameTask(load_config("frame")).metric() == ("acc", "max")
    assert FrameTask(load_config("frame", None, ["train.metric=loss"])).metric() == ("loss", "min")


def test_importing_the_tasks_and_the_cli_loads_no_torch():
    """``asrkit --help`` lists the tasks without importing torch (a task imports it in its methods)."""
    code = "import sys, asrkit.tasks, asrkit.cli.main; assert 'torch' not in sys.modules, 'torch'"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert p.returncode == 0, p.stderr


def test_a_registered_task_is_a_train_command():
    code = """
from asrkit.tasks import register_task
from asrkit.tasks.frame import FrameTask

@register_task
class Toy(FrameTask):
    name = "toy"
    help = "A toy task for the registry test."
    train_needs = "toy labels"
    conf_example = "conf/toy.yaml"

from asrkit.cli.main import main
main(["train", "--help"])
main(["train", "toy", "--help"])
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    out = " ".join(p.stdout.split())
    assert "toy A toy task for the registry test." in out and "frame" in out and "ctc" in out
    assert "Needs toy labels." in out and "conf/toy.yaml" in out


def test_frame_units_of_integer_labels_keep_every_id_up_to_the_largest():
    """Integer frame labels index a fixed list (the course's older HW1P2 years): a training set that
    lacks id 2 still gets its class, so a dev frame labelled 2 is not 'out of range'."""
    from types import SimpleNamespace

    from asrkit.tasks.frame import frame_units

    store = SimpleNamespace(path="feats/train", ali={"u1": "0 1 1 3", "u2": "4 0"})
    units = frame_units(store, None)
    assert units.units[1:] == ["0", "1", "2", "3", "4"] and units.id_of("2") == 3
    train = SimpleNamespace(path="feats/train", ali={"u1": "x y", "u2": "07 y"})
    assert frame_units(train, None).units[1:] == ["07", "x", "y"]  # names, not indices: the labels seen
    # ... in training and in dev: a phone the training set lacks keeps a class for dev
    dev = SimpleNamespace(path="feats/dev", ali={"d1": "x OY"})
    assert frame_units(train, None, dev).units[1:] == ["07", "OY", "x", "y"]
    from asrkit.errors import DataError

    with pytest.raises(DataError, match="feats/dev/ali: '<blank>' cannot be a frame label"):
        frame_units(train, None, SimpleNamespace(path="feats/dev", ali={"d1": "x <blank>"}))
