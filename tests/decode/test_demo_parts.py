"""Pieces of the demo that need no training: its config, the recipe's copy of
it, the PER table, option checks."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asrkit.decode.demo import DEMO_CONFIG, GroupScore, demo_table, run_demo, _train_config
from asrkit.errors import ConfigError, UsageError
from asrkit.score.report import render_plain

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


def test_demo_config_is_valid_and_matches_the_recipe():
    cfg = _train_config(30, "cpu", 0, [])
    assert cfg["task"] == "ctc" and cfg["units"]["kind"] == "phone" and cfg["train"]["epochs"] == 30
    recipe = yaml.safe_load((RECIPE / "conf" / "ctc_phone.yaml").read_text())
    for key, value in DEMO_CONFIG.items():
        sec, name = key.split(".")
        assert recipe[sec][name] == value, key


def test_recipe_script_parses_and_has_stages():
    import subprocess

    script = RECIPE / "run.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    p = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "--stop-stage" in p.stdout
    p = subprocess.run(["bash", str(script), "--stage", "x"], capture_output=True, text=True)
    assert p.returncode == 2
    p = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown option" in p.stderr


def test_bad_options_fail_before_any_work(tmp_path):
    with pytest.raises(UsageError):
        run_demo(tmp_path / "d", minutes=0)
    with pytest.raises(UsageError):
        run_demo(tmp_path / "d", device="tpu")
    with pytest.raises(ConfigError, match="model.hiden"):
        run_demo(tmp_path / "d", overrides=["model.hiden=3"])
    assert not (tmp_path / "d").exists()


def test_table():
    g = [GroupScore("test, all voices", ["a", "b", "c", "d"], 10, 200, 10, 5, 5),
         GroupScore("voice heard only in test", ["ked-v0", "ked-v1"], 4, 80, 8, 4, 4),
         GroupScore("ked-v0", ["ked-v0"], 2, 40, 4, 2, 2)]
    assert g[0].per == 10.0 and g[1].per == 20.0
    text = render_plain(demo_table(g, "PER", held_out=["ked-v0"]))
    assert "(4 speakers)" in text and "(ked-v0, ked-v1)" in text and "ked-v0 *" in text
    assert "10.00" in text and "20.00" in text and "%PER" in text


def test_demo_cli_usage_errors(capsys, tmp_path):
    from asrkit.cli.main import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--minutes", "0"]) == 2
    assert main(["demo", "--out", str(tmp_path / "d"), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
