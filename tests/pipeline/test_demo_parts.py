"""Pieces of the demo that need no training: its config (scratch layers, a
fixed number of epochs), the recipe's copy of it, the PER table, option checks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from asrkit.errors import ConfigError, UsageError
from asrkit.pipeline.demo import (DEMO_CONFIG, DEMO_EPOCHS, DemoResult, GroupScore, SearchScore, demo_table,
                                  demo_train_config, run_demo, words_table)
from asrkit.score import Counts
from asrkit.score.report import render_plain

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "tiny"


def test_demo_config_is_valid_and_matches_the_recipe():
    cfg = demo_train_config()
    assert cfg["task"] == "ctc" and cfg["units"]["kind"] == "phone" and cfg["train"]["epochs"] == DEMO_EPOCHS
    assert cfg["model"]["impl"] == "scratch"
    recipe = yaml.safe_load((RECIPE / "conf" / "ctc_phone.yaml").read_text())
    for key, value in DEMO_CONFIG.items():
        sec, name = key.split(".")
        assert recipe[sec][name] == value, key
    assert recipe["train"]["epochs"] == DEMO_EPOCHS
    # native is one override away
    assert demo_train_config(overrides=["model.impl=native"])["model"]["impl"] == "native"


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for p in [*ROOT.glob("conf/*.yaml"),
                                                                      *ROOT.glob("recipes/*/conf/*.yaml")]))
def test_shipped_model_configs_run_scratch(path):
    cfg = yaml.safe_load((ROOT / path).read_text())
    if "model" in cfg:  # feature configs have no model
        assert cfg["model"]["impl"] == "scratch", path


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT) for p in [*ROOT.glob("conf/*.yaml"),
                                                                      *ROOT.glob("recipes/*/conf/*.yaml")]))
def test_config_headers_name_files_that_exist(path):
    """Every ``--conf FILE`` / ``x.yaml`` a config's header comment names exists (paths from the repository root)."""
    import re

    header = "\n".join(line for line in (ROOT / path).read_text().splitlines() if line.startswith("#"))
    named = re.findall(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.yaml)", header)
    for name in named:
        assert (ROOT / name).is_file(), f"{path} names {name}, which does not exist"


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
    p = subprocess.run(["bash", str(script), "--impl", "fast"], capture_output=True, text=True)
    assert p.returncode == 2 and "--impl" in p.stderr


def test_bad_options_fail_before_any_work(tmp_path):
    with pytest.raises(UsageError, match="--minutes"):
        run_demo(tmp_path / "d", minutes=0)
    with pytest.raises(UsageError, match="--epochs"):
        run_demo(tmp_path / "d", epochs=0)
    with pytest.raises(UsageError):
        run_demo(tmp_path / "d", device="tpu")
    with pytest.raises(ConfigError, match="model.hiden"):
        run_demo(tmp_path / "d", overrides=["model.hiden=3"])
    with pytest.raises(ConfigError, match="impl"):
        run_demo(tmp_path / "d", overrides=["model.impl=fast"])
    assert not (tmp_path / "d").exists()


def _groups() -> list[GroupScore]:
    return [GroupScore("test, all voices", ["a", "b", "c", "d"], 10, Counts(200, 200, 180, 10, 5, 5)),
            GroupScore("voice heard only in test", ["ked-v0", "ked-v1"], 4, Counts(80, 80, 68, 8, 4, 4)),
            GroupScore("ked-v0", ["ked-v0"], 2, Counts(40, 38, 34, 4, 2, 0))]


def test_table():
    g = _groups()
    assert g[0].per == 10.0 and g[1].per == 20.0 and g[2].per == 15.0
    assert g[0].counts.errors == 20
    text = render_plain(demo_table(g, "PER", held_out=["ked-v0"]))
    assert "(4 speakers)" in text and "(ked-v0, ked-v1)" in text and "ked-v0 *" in text
    assert "10.00" in text and "20.00" in text and "15.00" in text and "%PER" in text
    # errors against an empty reference: no rate, shown as '-'
    empty = GroupScore("empty", ["x"], 1, Counts(0, 2, 0, 0, 0, 2))
    assert empty.per is None
    assert render_plain(demo_table([empty], "PER")).splitlines()[-1].split()[-1] == "-"


def test_words_table_shows_the_held_out_voice_when_there_is_one():
    rows = [SearchScore("greedy CTC (phones)", "h", None, 16.0, 35.5),
            SearchScore("beam 20 + lexicon + 3-gram LM", "l", 31.25, 12.0, 32.5)]
    lines = render_plain(words_table(rows)).splitlines()
    assert "%PER HELD-OUT VOICE" in lines[1]
    assert lines[-2].split()[-3:] == ["-", "16.00", "35.50"]
    assert lines[-1].split()[-3:] == ["31.25", "12.00", "32.50"]
    # no held-out voice (a corpus subset without it): the column is left out
    plain = render_plain(words_table([SearchScore("greedy CTC (phones)", "h", None, 16.0)]))
    assert "HELD-OUT" not in plain and plain.splitlines()[-1].split()[-2:] == ["-", "16.00"]


def test_demo_json_counts(tmp_path):
    g = _groups()
    r = DemoResult(out=tmp_path, exp=tmp_path / "exp", hyp=tmp_path / "h", ref=tmp_path / "r",
                   report=tmp_path / "p", per_utt=tmp_path / "u", groups=g[:2], speakers=g[2:], epochs=3,
                   epochs_planned=3, out_of_time=False, impl="scratch", threads=1, train_frames_per_s=1234.4)
    j = json.loads(json.dumps(r.to_json()))
    assert j["per"] == 10.0 and j["impl"] == "scratch" and j["threads"] == 1 and j["train_frames_per_s"] == 1234
    first = j["groups"][0]
    assert (first["ref"], first["sub"], first["dele"], first["ins"], first["errors"], first["per"]) == (
        200, 10, 5, 5, 20, 10.0)
    assert j["speakers"][0]["name"] == "ked-v0" and j["speakers"][0]["per"] == 15.0


def test_demo_cli_usage_errors(capsys, tmp_path):
    from asrkit.cli.main import main

    assert main(["demo", "--out", str(tmp_path / "d"), "--minutes", "0"]) == 2
    assert main(["demo", "--out", str(tmp_path / "d"), "--epochs", "0"]) == 2
    assert main(["demo", "--out", str(tmp_path / "d"), "--threads", "0"]) == 2
    assert "--threads" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "d"), "model.hiden=3"]) == 2
    assert "model.hiden" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
