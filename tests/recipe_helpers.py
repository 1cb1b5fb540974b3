"""What the recipe tests (tests/test_recipe_*.py) share: running a recipe script with this
interpreter's asrkit, its syntax and --help, tiny training configs, and the checks of a finished
corpus recipe run (stage logs, the results table, a rerun that keeps its outputs)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the recipes call asrkit as this interpreter's module (no installed entry point needed)
ENV = dict(os.environ, ASRKIT=f"{sys.executable} -m asrkit")


def run_script(script: Path, *args: object, env: dict | None = None, cwd: Path | None = None
               ) -> subprocess.CompletedProcess:
    """``bash SCRIPT ARGS...`` with output captured (the arguments as strings)."""
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True,
                          env=env or ENV, cwd=cwd)


def check_syntax_and_help(script: Path, words: list[str]) -> None:
    """``bash -n`` accepts the script, and its --help exits 0 naming every one of ``words``."""
    p = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = run_script(script, "--help")
    assert p.returncode == 0, p.stderr
    for word in words:
        assert word in p.stdout, word


def ids(path: Path) -> list[str]:
    """The first field of every line of a Kaldi table (utt-ids of text, hyp.txt, ...)."""
    return [line.split()[0] for line in path.read_text().splitlines()]


# Tiny model configs: a few thousand parameters, enough to run every stage of a recipe in seconds.
_MODELS = {
    "ctc": "{{type: ctc, impl: scratch, subsampling: {subsampling}, encoder: lstm, hidden: 16, layers: 1, dropout: 0.0}}",
    "transformer": "{{type: transformer, impl: scratch, hidden: 16, heads: 2, ff_mult: 2, encoder_layers: 1, "
                   "decoder_layers: 1,\n        conv_channels: 4, dropout: 0.0}}",
    "las": "{{type: las, impl: scratch, listener_hidden: 16, pyramid_layers: 2, attention_dim: 16, embed_dim: 16,\n"
           "        speller_hidden: 16, location_channels: 2, location_kernel: 5, dropout: 0.0}}",
    "frame": "{{type: frame_mlp, impl: scratch, context: {context}, hidden: [32], dropout: 0.0}}",
}
_UNITS = {"ctc": "phone", "transformer": "char", "las": "char", "frame": None}


def tiny_conf(task: str, *, units: str | None = None, epochs: int = 1, threads: int | None = None,
              subsampling: int = 4, context: int = 2) -> str:
    """The YAML of a tiny ``task`` (ctc, transformer, las, frame) model: ``units`` (default phone for
    ctc, char for the attention models), ``epochs``, ``threads`` (train.threads, when given), the CTC
    encoder's ``subsampling`` and the frame MLP's ``context``."""
    lines = [f"task: {task}", "model: " + _MODELS[task].format(subsampling=subsampling, context=context)]
    units = units or _UNITS[task]
    if units:
        lines.append(f"units: {{kind: {units}}}")
    lines.append("data: {cmvn: global, max_frames: 40000}")
    if task != "frame":
        lines.append("features: {specaugment: false}")
    lines.append("optim: {lr: 3.0e-3, warmup_steps: 1}")
    lines.append(f"train: {{epochs: {epochs}, tensorboard: false" + (f", threads: {threads}" if threads else "") + "}")
    return "\n".join(lines) + "\n"


def write_conf(path: Path, task: str, **kw) -> Path:
    """:func:`tiny_conf` written to ``path``; returns ``path``."""
    path.write_text(tiny_conf(task, **kw))
    return path


def check_stage_logs(work: Path, names: list[str]) -> None:
    """Stage N logged to work/exp/log/NN_<names[N]>.log, for every stage."""
    for n, name in enumerate(names):
        assert (work / "exp" / "log" / f"{n:02d}_{name}.log").is_file(), name


def check_results_table(work: Path, stdout: str, exps: list[str], sets: list[str]) -> None:
    """work/exp/results.md has one row per model of ``exps`` (in order) with the %WER of each
    decode_<set>/wer.txt, one column per set, and the run printed it."""
    table = (work / "exp" / "results.md").read_text().splitlines()
    assert table[0] == "| model | " + " | ".join(sets) + " |" and len(table) == 2 + len(exps), table
    for exp, row in zip(exps, table[2:]):
        wers = [re.match(r"%WER (\S+)", (work / "exp" / exp / f"decode_{s}" / "wer.txt").read_text()).group(1)
                for s in sets]
        assert row == f"| {exp} | " + " | ".join(wers) + " |", row
    assert "\n".join(table) in stdout


def check_rerun_keeps(script: Path, cmd: list[str], stage: int, kept: Path) -> None:
    """Running stage ``stage`` again (``cmd`` plus --stage/--stop-stage) says 'up to date' and leaves
    the file ``kept`` untouched."""
    before = kept.stat().st_mtime_ns
    p = run_script(script, *cmd, "--stage", stage, "--stop-stage", stage)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "up to date" in p.stdout and kept.stat().st_mtime_ns == before


def corpus_refusals(example: str) -> list[tuple[list[str], int, str]]:
    """The refusals every corpus recipe makes, as (args, exit code, message) cases for check_refusal:
    no --corpus, a --corpus that is not there (``example``: a path that does not exist), an unknown option."""
    return [([], 2, "--corpus is required (the corpus folder)"),
            (["--corpus", example], 1, f"--corpus {example}: no such folder"),
            (["--bogus", "1"], 2, "unknown option '--bogus'")]


def check_refusal(script: Path, work: Path, args: list, code: int, message: str, at_end: bool = False) -> None:
    """``SCRIPT --dir WORK ARGS...`` exits ``code`` with ``message`` on stderr (its last line when
    ``at_end``), and has written nothing: checked before anything runs."""
    p = run_script(script, "--dir", work, *args)
    assert p.returncode == code, p.stdout + p.stderr
    assert (p.stderr.strip().endswith(message) if at_end else message in p.stderr), p.stderr
    assert not work.exists()
