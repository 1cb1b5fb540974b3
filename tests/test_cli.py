"""The CLI skeleton: global options, error handling, exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import asrkit
from asrkit.cli.main import main

ASRKIT = [sys.executable, "-m", "asrkit"]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"asrkit {asrkit.__version__}"


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "score" in out
    assert "--quiet" in out and "--debug" in out


def test_user_error_is_one_red_line_exit_1(tmp_path: Path):
    missing = tmp_path / "nope.txt"
    p = subprocess.run([*ASRKIT, "score", str(missing), str(missing)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "nope.txt" in lines[0] and "Traceback" not in p.stderr


def test_debug_shows_traceback(tmp_path: Path):
    missing = tmp_path / "nope.txt"
    p = subprocess.run([*ASRKIT, "--debug", "score", str(missing), str(missing)], capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" in p.stderr and "nope.txt" in p.stderr


def test_usage_error_exit_2(capsys):
    assert main(["score", "--no-such-option"]) == 2
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "no-such-option" in err.replace("\n", " ")


def test_quiet_flag_sets_log_state():
    from asrkit import log

    try:
        assert main(["-q", "--version"]) == 0
        main(["-q", "score", "--help"])
        assert log.is_quiet()
    finally:
        log.set_quiet(False)


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path):
    from asrkit.io import atomic_write

    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as f:
        f.write("whole\n")
    assert target.read_text() == "whole\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_read_text_errors_name_file_and_line(tmp_path: Path):
    from asrkit.errors import InputError
    from asrkit.io import read_text

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\n\xff\xfe broken\n")
    with pytest.raises(InputError, match=r"bad.txt:2: invalid UTF-8"):
        read_text(bad)
    with pytest.raises(InputError, match="no such file"):
        read_text(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a directory"):
        read_text(tmp_path)


def test_read_table_duplicate_ids(tmp_path: Path):
    from asrkit.data.table import read_table, write_table
    from asrkit.errors import InputError

    f = tmp_path / "text"
    write_table(f, {"b": "x y", "a": ["1", "2"], "B": "z"})
    assert f.read_text() == "B z\na 1 2\nb x y\n"  # C-locale order
    assert read_table(f) == {"B": "z", "a": "1 2", "b": "x y"}
    f.write_text("a 1\n\nb 2\na 3\n")
    with pytest.raises(InputError, match=r"text:4: duplicate id 'a' \(first on line 1\)"):
        read_table(f)


def test_atomic_write_gives_the_usual_file_mode(tmp_path: Path):
    import os

    from asrkit.io import atomic_write

    mask = os.umask(0o022)
    os.umask(mask)
    with atomic_write(tmp_path / "f.txt") as f:
        f.write("x")
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~mask


def test_help_groups_commands_by_pipeline_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    stages = ["Data", "Features", "Training", "Language models", "Decoding", "Scoring", "Demo & tools"]
    found = [out.find(f"─ {stage} ─") for stage in stages]
    assert all(i >= 0 for i in found), out
    assert found == sorted(found), "stages out of pipeline order"
    # each command sits under its stage's heading
    for command, stage in [("corpus", "Data"), ("featurize", "Features"), ("train", "Training"),
                           ("lm", "Language models"), ("decode", "Decoding"), ("tune", "Decoding"),
                           ("score", "Scoring"), ("demo", "Demo & tools")]:
        at = out.find(f"│ {command} ")
        assert at >= 0, command
        heading = max((i, s) for i, s in zip(found, stages) if i < at)[1]
        assert heading == stage, (command, heading)


@pytest.mark.parametrize("argv", [["--help"], ["decode", "--help"], ["tokenizer", "train", "--help"],
                                  ["featurize", "--help"], ["score", "--help"]])
def test_help_shows_flags_without_a_value_type(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out, out
    assert "--help" in out


def test_flag_names_shown_with_their_negation(capsys):
    assert main(["tokenizer", "train", "--help"]) == 0
    assert "--no-cmudict" in capsys.readouterr().out


def test_stderr_is_not_wrapped_when_redirected(tmp_path: Path):
    """Log lines longer than 80 columns stay one line in a log file."""
    code = "from asrkit import log; log.info('x ' * 100); log.warn('y' * 300)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "80"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and lines[0].strip() == ("x " * 100).strip() and lines[1].endswith("y" * 300)


@pytest.mark.parametrize("key", ["optim.lr", "features.time_ratio", "train.epochs", "data.max_frames"])
def test_quoted_numbers_are_numbers_for_every_number_key(tmp_path: Path, key: str):
    from asrkit.errors import ConfigError
    from asrkit.train.config import load_config

    sec, name = key.split(".")
    real = name in ("lr", "time_ratio")
    value = "0.5" if real else "3"
    cfg = load_config("ctc", overrides=[f'{key}="{value}"'])
    assert cfg[sec][name] == (0.5 if real else 3) and type(cfg[sec][name]) is (float if real else int)
    conf = tmp_path / "c.yaml"
    conf.write_text(f"{sec}:\n  {name}: '{value}'\n")
    assert load_config("ctc", conf=conf)[sec][name] == (0.5 if real else 3)
    for bad in ("abc", "nan", "1.5" if not real else "inf"):
        with pytest.raises(ConfigError, match=name):
            load_config("ctc", overrides=[f'{key}="{bad}"'])
