"""``asrkit train TASK`` (one command per task of :mod:`asrkit.tasks`: frame, ctc, ..., lm) and ``asrkit average``.

Every task's command takes the same options; the two inputs are the task's
(feature stores ``--train`` / ``--dev``; the LM task's texts ``--text`` / ``--dev``:
:attr:`asrkit.tasks.base.Task.train_option`)."""
from __future__ import annotations

from pathlib import Path

import typer

from asrkit import log
from asrkit.errors import UsageError

train_app = typer.Typer(help="Train a model on feature stores (or an LM on text): one command per task "
                             "(frame classifier, CTC, ..., lm).",
                        no_args_is_help=True)


def _run(task: str, train: Path, dev: Path, out: Path, conf: Path | None, overrides: list[str] | None,
         resume: bool, device: str | None, nproc: int, seed: int | None, overwrite: bool = False) -> None:
    from asrkit.train import load_config
    from asrkit.train import train as run_train
    from asrkit.train.config import parse_overrides
    from asrkit.train.distributed import env

    pairs = parse_overrides(overrides or [])
    if device is not None:
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device must be auto, cpu or cuda (got '{device}')")
        pairs.append(("train.device", device))
    if seed is not None:
        pairs.append(("train.seed", seed))
    base = None
    saved = Path(out) / "config.yaml"
    if resume and saved.is_file():
        # resuming: the run's own config is the starting point; options given must agree with it
        from asrkit.train.config import read_yaml

        base = read_yaml(saved)
        if base.get("task") != task:
            raise UsageError(f"{out} is a '{base.get('task')}' run, not '{task}'")
    cfg = load_config(task, conf, pairs, base=base)
    if overwrite and resume:
        raise UsageError("--overwrite and --resume exclude each other")
    r = run_train(cfg, train, dev, out, resume=resume, nproc=nproc, overwrite=overwrite)

    if r.best is not None and env().main:
        from asrkit.tasks import get_task

        unit = "%" if r.metric in get_task(task).percent_metrics else ""
        log.info(f"{out}: {r.epochs} epoch(s), {r.steps} updates; best dev {r.metric} {r.best:.2f}{unit} "
                 f"at epoch {r.best_epoch}{' (stopped early)' if r.stopped_early else ''}; "
                 f"checkpoints in {out}/checkpoints")


_OV_HELP = "Config overrides key=value with dotted keys (model.hidden=512 optim.lr=1e-3)."


def _train_command(task: str, cls):
    """The ``asrkit train TASK`` command: the same options for every task (its
    training input named by the task), help naming its needs."""

    def command(
        overrides: list[str] | None = typer.Argument(None, help=_OV_HELP),
        train: Path = typer.Option(..., cls.train_option, help=f"{cls.train_help} Needs {cls.train_needs}."),
        dev: Path = typer.Option(..., "--dev", help=cls.dev_help),
        out: Path = typer.Option(..., "--out", "-o", help="Exp dir to write (config, units, checkpoints, metrics)."),
        conf: Path | None = typer.Option(None, "--conf", help=f"Config YAML ({cls.conf_example})."),
        resume: bool = typer.Option(False, "--resume", help="Continue from EXP/checkpoints/last.pt."),
        device: str | None = typer.Option(None, "--device", help="auto | cpu | cuda (default: train.device)."),
        nproc: int = typer.Option(1, "--nproc", help="Start N DistributedDataParallel processes on this machine."),
        seed: int | None = typer.Option(None, "--seed", help="Random seed (default: train.seed)."),
        overwrite: bool = typer.Option(False, "--overwrite",
                                       help="Replace OUT's contents when another command made it."),
    ) -> None:
        _run(task, train, dev, out, conf, overrides, resume, device, nproc, seed, overwrite)

    command.__doc__ = cls.help
    command.__name__ = f"train_{task}"
    return command


def _add_task_commands() -> None:
    """``asrkit train NAME`` for every registered task not yet a command (the
    task gives its help line, what its training store needs, its conf files)."""
    from asrkit.tasks import TASKS

    have = {c.name for c in train_app.registered_commands}
    for name, cls in TASKS.items():
        if name not in have:
            train_app.command(name)(_train_command(name, cls))


def average(
    exp: Path = typer.Argument(..., help="Exp dir with checkpoints/epoch-N.pt."),
    last: int = typer.Option(..., "--last", help="Average the last N epoch checkpoints (fewer there: all of them, "
                                                  "with a warning)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output file (default EXP/checkpoints/avg-last-N.pt)."),
) -> None:
    """Average the weights of the last N epoch checkpoints; prints the new checkpoint's path."""
    from asrkit.train import average_checkpoints

    path = average_checkpoints(exp, last, out)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    _add_task_commands()
    app.add_typer(train_app, name="train")
    app.command("average")(average)
