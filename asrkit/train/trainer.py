"""The training loop: one loop for every task (``asrkit train NAME``).

    from asrkit.train import load_config, train
    cfg = load_config("ctc", "conf/ctc_bilstm.yaml", ["optim.lr=1e-3"])
    result = train(cfg, "feats/train", "feats/dev", "exp/ctc")

The loop knows no task and no data format. What a task learns (its data:
what the two inputs are, its datasets, the batches of an epoch; units,
the model, batch -> loss, dev metrics, optimizers, per-epoch hooks) is an
:class:`asrkit.tasks.base.Task`, found by the config's
``task`` name in the registry of :mod:`asrkit.tasks`. The layering rule
(tests/test_layering.py): ``asrkit.train`` imports from ``asrkit.tasks`` only
the registry and the base (``asrkit.tasks`` / ``asrkit.tasks.base``), never
a task's module and never ``asrkit.models``; ``asrkit.tasks`` never imports
``asrkit.train``. The loop never asks which task it runs.

What one run does (rank 0 writes every file):

1. checks the config (the trainer's sections, then the task's rules and its
   model section) and the inputs (the task's ``open_data``: two feature
   stores, or an LM's texts); the task makes (rank 0) or loads
   ``exp/units/``, builds the model with ``input_dim`` (when the data has one)
   and ``num_classes`` from the data, and gives its datasets, batch plan and
   dev set (``train_data``: e.g. the targets and the training utterances
   kept); saves ``exp/config.yaml`` (and ``exp/features.yaml``, the training
   store's feature config, when the data has one);
2. trains with the task's optimizers (one AdamW by default, :mod:`asrkit.nn.optim`),
   warmup + cosine / plateau / constant or the Noam learning rate, gradient
   clipping, ``torch.autocast`` on CUDA (bf16, or fp16 with a GradScaler);
   CPU runs fp32. A non-finite loss or gradient skips the batch. A task
   with ``phases()`` (a GAN: discriminator, then generator) steps its
   optimizers one phase at a time, each after its own loss and backward;
3. after each epoch evaluates on dev (the task's metrics, e.g. loss and frame
   accuracy, or greedy PER / WER / CER), adds the task's ``end_epoch``
   metrics, and writes ``checkpoints/epoch-N.pt``, ``last.pt`` and
   ``best.pt`` atomically; stops early after ``train.patience`` epochs
   without a better dev metric (the task's ``metric()``).

Loss: the task's ``loss_sum`` over the global batch divided by the global
normalizer the task's batch plan gives with each batch (its target tokens
for ctc and the LM, its frames for frame). Every rank divides its local
sum by that global count, so N DDP processes compute exactly the gradient of
the single-process global batch. The task's ``stats`` are summed the same way
and logged divided by the summed normalizers, next to the loss.

Resume (``resume=True``): ``last.pt`` holds the data position (the number of
global batches done in its epoch) and every RNG state; the batches of an
epoch (the task's plan) and the SpecAugment masks are pure functions of ``(seed, epoch)``, so a
run killed mid-epoch and resumed ends with the same weights as one that was
never stopped. One optimizer's state is the checkpoint's ``optimizer`` (and
``scheduler``); several are dicts of them by the task's optimizer names.

Faults: every file is written atomically, so a kill leaves whole files (the
next run removes the temp files of a save it cut short). Ctrl-C ends the run
with one line and exit status 130; a full disk with one line naming the file,
the previous checkpoint kept. Checkpoints are plain data (tensors, numbers,
lists, dicts) and are read with ``torch.load(weights_only=True)`` only.
"""
from __future__ import annotations

import errno
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit import log
from asrkit.errors import ConfigError, DataError, TrainingError, UsageError
from asrkit.io import atomic_write, os_error_line, prepare_output_dir
from asrkit.tasks import Task, get_task
from asrkit.train import distributed
from asrkit.train.checkpoint import (
    CheckpointWriteError,
    copy_atomic,
    epoch_checkpoints,
    load_checkpoint,
    load_weights,
    remove_stale_temps,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from asrkit.train.config import save_config, validate

__all__ = ["RESUME_MAY_CHANGE", "TrainInterrupted", "TrainResult", "check_config", "train"]

#: config keys that may differ between a run and its ``--resume``
RESUME_MAY_CHANGE = {
    ("train", "epochs"), ("train", "max_steps"), ("train", "patience"), ("train", "device"),
    ("train", "log_every"), ("train", "save_every_steps"), ("train", "save_every_min"),
    ("train", "keep_epochs"), ("train", "tensorboard"), ("train", "threads"), ("data", "num_workers"),
    ("train", "nan_limit"),
}


class TrainInterrupted(TrainingError):
    """Ctrl-C (KeyboardInterrupt) stopped the run; its checkpoints are whole. Exit status 130."""

    exit_code = 130


def _interrupted(exp: Path) -> TrainInterrupted:
    last = exp / "checkpoints" / "last.pt"
    if last.is_file():
        return TrainInterrupted(f"interrupted; resume with --resume (it continues from {last})")
    return TrainInterrupted("interrupted before the first checkpoint was saved; run it again to start over")


@dataclass
class TrainResult:
    """Summary of a finished (or stopped) run."""

    exp: Path
    epochs: int          # epochs completed
    steps: int           # optimizer updates
    metric: str          # the dev metric name (acc, per, wer, cer, loss)
    best: float | None   # its best value
    best_epoch: int | None
    stopped_early: bool
    last_dev: dict[str, float] | None


# ------------------------------------------------------------------ config checks
def check_config(cfg: dict) -> None:
    """Everything about a config that can be checked without data: the
    trainer's keys, the task's rules and its model section (with placeholder dims)."""
    validate(cfg)
    get_task(cfg["task"])(cfg).check_config()


def _pick_device(name: str, d: distributed.Dist) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", d.local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


def _precision(cfg: dict, device: torch.device) -> torch.dtype | None:
    p = cfg["train"]["precision"]
    if device.type != "cuda":
        if p in ("bf16", "fp16"):
            log.warn(f"train.precision={p} applies to CUDA only; this run on CPU is fp32")
        return None
    if p == "fp32":
        return None
    if p == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if p == "bf16" else torch.float16


# ------------------------------------------------------------------ lr schedule
class _Schedule:
    """The learning rate of one optimizer: warmup + cosine (per update), warmup
    + plateau / constant (plateau per epoch), or Noam (per update). Each param
    group's lr follows the schedule scaled to its own starting lr (the
    ``optim.lr`` of the default optimizer)."""

    def __init__(self, opt: torch.optim.Optimizer, cfg: dict, total_steps: int, mode: str) -> None:
        from asrkit.nn.optim import LinearWarmupCosine, ReduceLROnPlateau
        from asrkit.nn.optim.schedulers import WarmupLR

        o = cfg["optim"]
        self.opt, self.kind = opt, o["scheduler"]
        self.bases = [float(g["lr"]) for g in opt.param_groups]
        self.warmup = min(int(o["warmup_steps"]), max(0, total_steps - 1))
        self.step_count = 0
        self.cos = self.plateau = self.noam = None
        if self.kind == "cosine":
            self.cos = LinearWarmupCosine(opt, self.warmup, max(total_steps, self.warmup + 1), eta_min=o["min_lr"])
        elif self.kind == "noam":
            # not shortened to the run: the schedule is defined by its warmup alone
            self.warmup = int(o["warmup_steps"])
            self.noam = WarmupLR(opt, self.warmup)
        else:
            self._set(self._warm_factor())
            if self.kind == "plateau":
                self.plateau = ReduceLROnPlateau(opt, mode=mode, factor=o["plateau_factor"],
                                                 patience=o["plateau_patience"], min_lr=o["min_lr"])

    def _warm_factor(self) -> float:
        return min(1.0, self.step_count / self.warmup) if self.warmup else 1.0

    def _set(self, factor: float) -> None:
        for g, base in zip(self.opt.param_groups, self.bases):
            g["lr"] = base * factor

    def step_update(self) -> None:
        self.step_count += 1
        if self.cos is not None:
            self.cos.step()
        elif self.noam is not None:
            self.noam.step()
        elif self.step_count <= self.warmup:
            self._set(self._warm_factor())

    def step_epoch(self, metric: float | None) -> None:
        if self.plateau is not None and metric is not None and self.step_count >= self.warmup:
            self.plateau.step(metric)

    @property
    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "lr": self.lr, "lrs": [float(g["lr"]) for g in self.opt.param_groups],
                "cos": self.cos.state_dict() if self.cos else None,
                "plateau": self.plateau.state_dict() if self.plateau else None,
                "noam": self.noam.state_dict() if self.noam else None}

    def load_state_dict(self, st: dict) -> None:
        self.step_count = st["step_count"]
        if self.cos is not None and st.get("cos"):
            self.cos.load_state_dict(st["cos"])
        if self.plateau is not None and st.get("plateau"):
            self.plateau.load_state_dict(st["plateau"])
        if self.noam is not None and st.get("noam"):
            self.noam.load_state_dict(st["noam"])
        lrs = st.get("lrs") or [st["lr"]] * len(self.opt.param_groups)  # checkpoints before "lrs": one lr
        for g, lr in zip(self.opt.param_groups, lrs):
            g["lr"] = lr


# ------------------------------------------------------------------ logging (rank 0)
class _Log:
    """``metrics.jsonl`` (one JSON object a line, appended whole and flushed)
    and ``train.log``. A run that starts over empties ``metrics.jsonl``; a
    resumed one keeps the events up to the checkpoint's step; both rewrite it
    atomically."""

    def __init__(self, exp: Path, active: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.active = active
        self.exp = exp
        self.tb = None
        if not active:
            return
        p = exp / "metrics.jsonl"
        if p.exists():
            _trim_metrics(p, resume_step)
        self.metrics = open(p, "ab")
        self.text = open(exp / "train.log", "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(exp / "tensorboard"))
            except ImportError:
                self.tb = None

    def event(self, **kw: Any) -> None:
        if not self.active:
            return
        kw = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in kw.items()}
        self.metrics.write((json.dumps(kw) + "\n").encode("utf-8"))  # one write of a whole line
        self.metrics.flush()
        if self.tb is not None:
            prefix = kw.get("event", "train")
            for k, v in kw.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, kw.get("step", 0))

    def line(self, msg: str, show: bool = True) -> None:
        if not self.active:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.text.write(f"{stamp} {msg}\n")
        self.text.flush()
        if show:
            log.info(msg)

    def close(self) -> None:
        if self.active:
            self.metrics.close()
            self.text.close()
            if self.tb is not None:
                self.tb.close()


def _trim_metrics(path: Path, resume_step: int | None) -> None:
    """Keep the events of ``path`` up to ``resume_step`` (None: none): what a
    killed run logged after the checkpoint a resume starts from is done again.
    A line cut short by a kill is dropped."""
    kept = []
    if resume_step is not None:
        for ln in path.read_bytes().decode("utf-8", errors="replace").splitlines():
            try:
                ev = json.loads(ln)
            except ValueError:
                continue  # a half-written line
            if not isinstance(ev, dict):
                continue
            step = ev.get("step", 0)
            # a skipped (non-finite) batch is logged with the updates before it
            if step < resume_step or (step == resume_step and ev.get("event") != "nonfinite"):
                kept.append(ln)
    with atomic_write(path, "w") as f:
        f.write("".join(k + "\n" for k in kept))


# ------------------------------------------------------------------ the run
def train(cfg: dict, train_feats: str | os.PathLike, dev_feats: str | os.PathLike, out: str | os.PathLike, *,
          resume: bool = False, nproc: int = 1,
          hooks: dict[str, Callable[..., Any]] | None = None, overwrite: bool = False) -> TrainResult:
    """Train the model of ``cfg`` (see :func:`asrkit.train.load_config`) on
    ``train_feats``, evaluating on ``dev_feats``, into the exp dir ``out``. The
    two inputs are what the task reads (:meth:`asrkit.tasks.base.Task.open_data`):
    feature stores, or the LM task's text files. ``nproc > 1`` starts that many DDP processes here (gloo on CPU);
    under ``torchrun`` the environment says the rank. ``hooks["after_step"]``
    is called as ``fn(step, epoch, position)`` after each update (tests).
    A new run (not ``resume``) refuses an ``out`` that another command made
    unless ``overwrite`` (:func:`asrkit.io.prepare_output_dir`).
    """
    check_config(cfg)
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1 (got {nproc})")
    if nproc > 1:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError("--nproc cannot be used under torchrun (it already started the processes)")
        try:
            distributed.launch(nproc, _run, cfg, str(train_feats), str(dev_feats), str(out), resume, None,
                               overwrite)
        except KeyboardInterrupt:
            raise _interrupted(Path(out)) from None
        ck = load_checkpoint(Path(out) / "checkpoints" / "last.pt")
        m, _ = get_task(ck["config"]["task"])(ck["config"]).metric()
        return TrainResult(Path(out), ck["epoch"], ck["step"], m, ck.get("best"), ck.get("best_epoch"),
                           ck.get("stopped_early", False), ck.get("last_dev"))
    return _run(cfg, str(train_feats), str(dev_feats), str(out), resume, hooks, overwrite)


def _merge_resume_config(saved: dict, new: dict, ck_path: Path, task: Task) -> dict:
    """The saved config with the keys a resume may change taken from ``new``."""
    if saved.get("task") != new["task"]:
        raise ConfigError(f"{ck_path}: is a '{saved.get('task')}' run, not '{new['task']}'; resume it with "
                          f"'asrkit train {saved.get('task')}' or start a new --out")
    from asrkit.train.config import with_new_defaults

    saved = with_new_defaults(saved, saved["task"])  # a key added since the run was saved: what the run did
    merged = json.loads(json.dumps(saved))
    for sec in ("data", "features", "units", "optim", "train"):
        for k, v in new[sec].items():
            old = saved.get(sec, {}).get(k)
            if (sec, k) in RESUME_MAY_CHANGE:
                merged[sec][k] = v
            elif old != v:
                raise ConfigError(f"{sec}.{k}={v!r} differs from {old!r} in the run being resumed "
                                  f"({ck_path}); resume with the same config or start a new --out")
    saved_model = saved["model"]
    dims = {k: saved_model[k] for k in ("input_dim", "num_classes") if k in saved_model}
    try:
        resolved = task.resolve_model_config({**new["model"], **dims})
    except ConfigError:
        resolved = dict(new["model"])
    for k, v in resolved.items():
        if k in ("input_dim", "num_classes", "impl"):
            continue
        if saved_model.get(k) != v:
            raise ConfigError(f"model.{k}={v!r} differs from {saved_model.get(k)!r} in the run being "
                              f"resumed ({ck_path}); resume with the same config or start a new --out")
    if "impl" in new["model"] or "impl" in saved_model:  # scratch | native may change: the same weights
        merged["model"]["impl"] = new["model"].get("impl", saved_model.get("impl"))
    return merged


def _run(cfg: dict, train_path: str, dev_path: str, out_path: str, resume: bool,
         hooks: dict[str, Callable[..., Any]] | None, overwrite: bool = False) -> TrainResult:
    cfg = json.loads(json.dumps(cfg))
    started = time.time()
    d = distributed.env()
    exp = Path(out_path)
    ckdir = exp / "checkpoints"
    last_path = ckdir / "last.pt"

    # ---- data and resume state (no work yet: errors come first)
    data = get_task(cfg["task"])(cfg).open_data(train_path, dev_path)
    dim = data.input_dim
    ck = None
    if resume and last_path.exists():
        ck = load_checkpoint(last_path)
        cfg = _merge_resume_config(ck["config"], cfg, last_path, get_task(cfg["task"])(cfg))
        want = ck["config"]["model"].get("input_dim")
        if dim is not None and want != dim:
            raise TrainingError(f"{last_path}: the checkpoint's model takes {want}-dim features but "
                                f"{train_path} has {dim}-dim ones; use features made with the "
                                f"same feature config, or start a new --out")
    elif not resume and last_path.exists() and not overwrite:
        raise UsageError(f"{exp} already has checkpoints; continue it with --resume or pick a new --out")
    elif resume and d.main:
        log.info(f"{exp}: no checkpoint to resume from; starting from scratch")
    init = None
    if ck is None and cfg["train"].get("init"):
        init = _init_source(cfg["train"]["init"], exp)
        # fine-tuning keeps the units of the run the weights come from, so unit ids keep their meaning
        cfg["units"]["dir"] = cfg["units"].get("dir") or str(init.units)
    if d.main and ck is None and not resume:
        # the rule of every command that writes a folder: never into one another command made
        prepare_output_dir(exp, "train", overwrite, inputs=(train_path, dev_path))
    if d.main:
        # temp files of saves that a killed run never finished (atomic writes leave nothing else)
        stale = remove_stale_temps([exp, ckdir, exp / "units"], before=started)
        if stale:
            log.info(f"{exp}: removed {len(stale)} temp file(s) left by an interrupted save")
    given = cfg["model"].get("input_dim")
    if dim is not None and given is not None and given != dim:
        raise DataError(f"model.input_dim={given} but {train_path} has {dim}-dim features; "
                        f"leave model.input_dim out (the trainer fills it in)")
    task = get_task(cfg["task"])(cfg)
    device = _pick_device(cfg["train"]["device"], d)
    amp_dtype = _precision(cfg, device)
    seed = int(cfg["train"]["seed"])

    if cfg["train"]["threads"] is not None:
        torch.set_num_threads(cfg["train"]["threads"])
    distributed.init(d, device)
    was_quiet = log.is_quiet()
    if not d.main:
        log.set_quiet(True)
    try:
        return _loop(cfg, d, exp, ck, data, device, amp_dtype, seed, task, hooks, init)
    except KeyboardInterrupt:
        raise _interrupted(exp) from None
    except CheckpointWriteError as err:
        kept = f"{last_path} is intact; " if last_path.is_file() else ""
        raise TrainingError(f"{err}; {kept}continue with --resume once that is fixed") from None
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise TrainingError(f"{os_error_line(err.filename or exp, err)}; free some space and "
                            f"continue with --resume") from None
    finally:
        log.set_quiet(was_quiet)
        distributed.shutdown()


@dataclass
class _Init:
    """Where a fine-tuning run's first weights come from (``train.init``)."""
    path: Path      # the checkpoint file
    units: Path     # the units folder of its exp
    weights: dict   # its model state


def _init_source(given: str, exp: Path) -> _Init:
    """``train.init``: a checkpoint file (``EXP/checkpoints/*.pt``) or an exp dir (its
    ``checkpoints/best.pt``, else ``last.pt``); its exp's ``units`` folder comes along."""
    p = Path(given)
    if p.is_dir():
        ck_path = next((p / "checkpoints" / n for n in ("best.pt", "last.pt") if (p / "checkpoints" / n).is_file()),
                       None)
        if ck_path is None:
            raise UsageError(f"train.init={given}: no checkpoints/best.pt or last.pt in that exp dir")
        p = ck_path
    elif not p.is_file():
        raise UsageError(f"train.init={given}: no such checkpoint file or exp dir")
    units = p.resolve().parent.parent / "units"
    if not (units / "units.txt").is_file():
        raise UsageError(f"train.init={given}: {units}/units.txt is missing (the checkpoint must sit in an exp "
                         f"dir's checkpoints/ folder, beside its units)")
    if units.resolve() == (exp / "units").resolve():
        raise UsageError(f"train.init={given} is a checkpoint of {exp} itself; continue it with --resume")
    return _Init(p, units, load_checkpoint(p)["model"])


def _barrier(d: distributed.Dist) -> None:
    if d.enabled:
        torch.distributed.barrier()


def _loop(cfg: dict, d: distributed.Dist, exp: Path, ck: dict | None, data, device: torch.device,
          amp_dtype: torch.dtype | None, seed: int, task: Task,
          hooks: dict[str, Callable[..., Any]] | None, init: "_Init | None" = None) -> TrainResult:
    import random

    dist = torch.distributed
    units_dir = exp / "units"
    ckdir = exp / "checkpoints"
    dcfg, tcfg = cfg["data"], cfg["train"]

    # ---- units (rank 0 makes them; everyone reads the saved folder)
    if d.main:
        exp.mkdir(parents=True, exist_ok=True)
        if ck is None:
            task.make_units_from(data, units_dir)
    _barrier(d)
    units = task.load_units(units_dir)
    metric_name, metric_mode = task.metric()

    # ---- model (same initial weights on every rank)
    given = cfg["model"].get("num_classes")
    if given is not None and ck is None and given != units.num_classes:
        raise DataError(f"model.num_classes={given} but {units_dir}/units.txt has {units.num_classes} units; "
                        f"leave model.num_classes out (the trainer fills it in)")
    if data.input_dim is not None:
        cfg["model"]["input_dim"] = data.input_dim
    cfg["model"]["num_classes"] = units.num_classes
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    model = task.build_model(cfg["model"])
    cfg["model"] = dict(model.config)
    if init is not None:
        load_weights(model, init.weights, init.path, of=exp / "config.yaml")
        if d.main:
            log.info(f"{exp}: starting from the weights of {init.path} (fresh optimizer and schedule)")
    model.to(device)

    # ---- data: the task's datasets, batch plan and dev set
    td = task.train_data(data, units, model, seed=seed, dist=d)
    if d.main:
        save_config(cfg, exp / "config.yaml")
        if data.feature_conf:  # the features the model takes (asrkit transcribe computes them from audio)
            save_config(data.feature_conf, exp / "features.yaml")
    td.set_epoch(0)
    steps_per_epoch = len(td.plan)
    if steps_per_epoch == 0:
        raise DataError(f"{data.train_path}: no training batches")
    unit = td.unit

    # ---- optimization
    ocfg = cfg["optim"]
    opts = task.optimizers(model)
    if not opts:
        raise TrainingError(f"the {task.name} task gave no optimizer")
    total_steps = tcfg["max_steps"] or tcfg["epochs"] * steps_per_epoch
    scheds = {name: _Schedule(o, cfg, total_steps, metric_mode) for name, o in opts.items()}
    sched = next(iter(scheds.values()))  # the first optimizer's lr is the one logged as lr
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    impl = cfg["model"].get("impl")
    task.setup(model, device)
    stat_names = tuple(task.stat_names())
    phases = _check_phases(task, opts)
    # one update: the phases in order, each stepping its optimizer; or one loss stepping them all
    steps = [(p, [opts[p]]) for p in phases] or [(None, list(opts.values()))]
    logged = stat_names + tuple(f"loss_{p}" for p in phases)  # the sums kept and logged next to the loss
    net: torch.nn.Module = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # a phase leaves the other optimizers' parameters without gradients (a GAN's D step: the generator)
        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=bool(phases))

    # ---- state
    epoch, position, step = 0, 0, 0
    best, best_epoch, bad_epochs = None, None, 0
    nan_streak, nan_total = 0, 0
    last_dev: dict[str, float] | None = None
    stopped_early = False
    resume_sums = None
    if ck is not None:
        load_weights(model, ck["model"], exp / "checkpoints" / "last.pt")
        _load_named(opts, ck["optimizer"], "optimizer", ckdir / "last.pt")
        _load_named(scheds, ck["scheduler"], "scheduler", ckdir / "last.pt")
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        epoch, position, step = ck["epoch"], ck["position"], ck["step"]
        best, best_epoch, bad_epochs = ck["best"], ck["best_epoch"], ck["bad_epochs"]
        nan_streak, nan_total = ck["nan_streak"], ck["nan_total"]
        last_dev = ck.get("last_dev")
        stopped_early = ck.get("stopped_early", False)
        rngs = ck["rng"]
        set_rng_state(rngs[d.rank] if d.rank < len(rngs) else rngs[0])
        resume_sums = ck.get("sums")  # the loss sums of the epoch so far, for its logged means
    else:
        # dropout streams differ per rank, like torch's default DDP behaviour
        from asrkit.features.specaugment import seed_of

        torch.manual_seed(seed_of((seed, "train", d.rank)))
        random.seed(seed_of((seed, "python", d.rank)))

    logger = _Log(exp, d.main, tcfg["tensorboard"], step if ck is not None else None)
    if d.main:
        nparams = sum(p.numel() for p in model.parameters())
        logger.line(f"{'resuming' if ck else 'training'} {task.name} model ({nparams / 1e6:.2f} M parameters"
                    f"{f', impl={impl}' if impl else ''}) on {device}{f' x{d.world_size}' if d.enabled else ''}"
                    f"{', ' + str(amp_dtype).replace('torch.', '') if amp_dtype else ''}: {td.train_items}, "
                    f"{steps_per_epoch} batches per epoch; dev {td.dev_items}"
                    + (f"; from epoch {epoch + 1} batch {position}" if ck else ""))

    def state(stop_flag: bool = False) -> dict:
        rng = rng_state()
        rngs = [None] * d.world_size if d.enabled else [rng]
        if d.enabled:
            dist.all_gather_object(rngs, rng)
        return {"model": model.state_dict(), "optimizer": _named_state(opts), "scheduler": _named_state(scheds),
                "scaler": scaler.state_dict() if scaler is not None else None, "rng": rngs,
                "epoch": epoch, "position": position, "step": step, "best": best, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "nan_streak": nan_streak, "nan_total": nan_total,
                "last_dev": last_dev, "stopped_early": stop_flag, "metric": metric_name, "config": cfg,
                "sums": _sums(win, ep_stats, logged) if position else None}

    def save_last(stop_flag: bool = False) -> None:
        st = state(stop_flag)
        if d.main:
            ckdir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(st, ckdir / "last.pt")

    autocast = (partial(torch.autocast, device_type="cuda", dtype=amp_dtype) if amp_dtype is not None
                else nullcontext)
    max_steps = tcfg["max_steps"]
    done = max_steps is not None and step >= max_steps
    t_last_save = time.monotonic()
    after_step = (hooks or {}).get("after_step")
    float_bufs = [t for t in model.buffers() if torch.is_floating_point(t)]
    eta = _Eta(tcfg["epochs"], steps_per_epoch, max_steps, step)

    while not done and epoch < tcfg["epochs"] and not stopped_early:
        task.start_epoch(epoch)
        td.set_epoch(epoch, position)
        plan = list(td.plan)
        steps_this_epoch = len(td.plan)  # e.g. the bucketed batches of this epoch: their count varies by epoch
        net.train()
        win, ep_stats = _new_sums(logged), _new_sums(logged)
        if resume_sums:  # resumed mid-epoch: the sums of the batches before the checkpoint
            win.update(resume_sums["window"])
            ep_stats.update(resume_sums["epoch"])
        resume_sums = None
        with log.progress(*_progress_columns(unit), transient=False) as bar:
            task_id = bar.add_task(f"epoch {epoch + 1}/{tcfg['epochs']}", total=steps_this_epoch,
                                   completed=position, loss=float("nan"), fps=0.0,
                                   eta=eta.left(epoch, position, steps_this_epoch))
            for batch in _batches(td.train, plan, td.collate, dcfg["num_workers"]):
                norm = batch[1]
                b = batch[0].to(device)
                save_now = (tcfg["save_every_steps"] and (step + 1) % tcfg["save_every_steps"] == 0) or (
                    tcfg["save_every_min"] and time.monotonic() - t_last_save > 60 * tcfg["save_every_min"])
                g_loss, g_norm, g_frames, g_save = 0.0, 0.0, 0.0, 0.0
                g_stats = [0.0] * len(logged)
                skipped: list[str] = []
                seen: set[str] = set()
                for i, (phase, phase_opts) in enumerate(steps):
                    first, last = i == 0, i == len(steps) - 1
                    # running statistics (BatchNorm) to put back if this phase turns out non-finite
                    saved_bufs = [t.detach().clone() for t in float_bufs]
                    if phase is None:
                        loss_sum, local_norm, task_stats = task.loss(net, b, device, autocast)
                    else:
                        loss_sum, local_norm, task_stats = task.loss(net, b, device, autocast, phase=phase)
                    objective = loss_sum * (d.world_size / norm)
                    if scaler is not None:
                        scaler.scale(objective).backward()
                    else:
                        objective.backward()
                    p_loss = float(loss_sum.detach())
                    values = _stat_values(task, task_stats, stat_names, seen, last)
                    if phase is not None:  # the phase's own loss, logged as loss_PHASE
                        values += [p_loss if p == phase else 0.0 for p in phases]
                    stats = torch.tensor([p_loss, float(local_norm), float(td.count(b)) if first else 0.0,
                                          float(not math.isfinite(p_loss)),
                                          float(bool(save_now) and d.main and first), *values], dtype=torch.float64)
                    if d.enabled:
                        if device.type == "cuda":  # nccl reduces CUDA tensors only
                            stats = stats.to(device)
                        dist.all_reduce(stats)
                    p_loss, p_norm, p_frames, p_bad, p_save, *p_stats = stats.tolist()
                    finite = p_bad == 0
                    if finite:
                        if scaler is not None:
                            for o in phase_opts:
                                scaler.unscale_(o)
                        if ocfg["grad_clip"] is not None:
                            params = model.parameters() if phase is None else _params_of(phase_opts)
                            gn = torch.nn.utils.clip_grad_norm_(params, ocfg["grad_clip"])
                            if scaler is None and not torch.isfinite(gn):
                                finite = False
                    if finite:
                        for o in phase_opts:
                            if scaler is not None:
                                scaler.step(o)
                            else:
                                o.step()
                        if scaler is not None:
                            scaler.update()
                    else:
                        with torch.no_grad():
                            for t, old in zip(float_bufs, saved_bufs):
                                t.copy_(old)
                        skipped.append(phase or "")
                    for o in opts.values():  # also the gradients a phase left on another optimizer's parameters
                        o.zero_grad(set_to_none=True)
                    g_loss += p_loss
                    if first:
                        g_norm, g_frames, g_save = p_norm, p_frames, p_save
                    g_stats = [a + v for a, v in zip(g_stats, p_stats)]
                finite = not skipped
                if finite:
                    nan_streak = 0
                else:
                    nan_streak += 1
                    nan_total += 1
                    logger.event(event="nonfinite", epoch=epoch + 1, step=step, streak=nan_streak,
                                 utts=b.utts[:5], **({"phases": skipped} if phases else {}))
                    if d.main:
                        where = f" in the {', '.join(skipped)} phase{'s' if len(skipped) > 1 else ''}" if phases else ""
                        log.warn(f"non-finite loss or gradient{where} at epoch {epoch + 1} batch {position + 1} "
                                 f"({td.item}s {', '.join(b.utts[:3])}{' ...' if len(b.utts) > 3 else ''}); "
                                 f"{'its step' + ('s' if len(skipped) > 1 else '') if phases else 'batch'} skipped")
                    if nan_streak >= tcfg["nan_limit"]:
                        raise TrainingError(
                            f"the loss was NaN/inf in {nan_streak} batches in a row (epoch {epoch + 1}, batch "
                            f"{position + 1}, e.g. {td.item} '{b.utts[0]}'); {td.nan_hint}")
                for sc in scheds.values():
                    sc.step_update()
                position += 1
                step += 1
                if finite:
                    for acc in (win, ep_stats):
                        acc["loss"] += g_loss
                        acc["norm"] += g_norm
                        acc["frames"] += g_frames
                        for k, v in zip(logged, g_stats):
                            acc[k] += v
                if step % tcfg["log_every"] == 0 or position == steps_this_epoch:
                    el = max(time.monotonic() - win["t"], 1e-9)
                    means = _means(win, logged)
                    fps = win["frames"] / el
                    logger.event(event="train", epoch=epoch + 1, step=step, **means, lr=sched.lr, **_other_lrs(scheds),
                                 **{f"{unit}_per_s": fps, unit: int(win["frames"])}, seconds=el)
                    bar.update(task_id, loss=means["loss"], fps=fps)
                    win = _new_sums(logged)
                bar.update(task_id, completed=position, eta=eta.left(epoch, position, steps_this_epoch, step))
                if after_step is not None:
                    after_step(step, epoch, position)
                if max_steps is not None and step >= max_steps:
                    done = True
                    break
                if g_save and position < steps_this_epoch:
                    save_last()
                    t_last_save = time.monotonic()
        if done and position < steps_this_epoch:
            save_last()  # stopped by train.max_steps mid-epoch
            break
        # ---- end of epoch: dev, checkpoints, early stopping
        el = max(time.monotonic() - ep_stats["t"], 1e-9)
        train_means = _means(ep_stats, logged)
        last_dev = _evaluate(task, epoch, model, td.dev, td.dev_refs, units, exp, d, device, autocast)
        if metric_name not in last_dev:
            raise TrainingError(f"the {task.name} task's dev metrics have no '{metric_name}' "
                                f"(they are {', '.join(last_dev)}); pick one with train.metric")
        value = last_dev[metric_name]
        improved = best is None or (value > best if metric_mode == "max" else value < best)
        if improved:
            best, best_epoch, bad_epochs = value, epoch + 1, 0
        else:
            bad_epochs += 1
        for sc in scheds.values():
            sc.step_epoch(value)
        epoch += 1
        position = 0
        if tcfg["patience"] is not None and bad_epochs >= tcfg["patience"]:
            stopped_early = True
        logger.event(event="dev", epoch=epoch, step=step, **{f"train_{k}": v for k, v in train_means.items()},
                     lr=sched.lr, **_other_lrs(scheds), **{f"{unit}_per_s": ep_stats["frames"] / el}, epoch_s=el,
                     best=bool(improved), **{f"dev_{k}": v for k, v in last_dev.items()})
        shown_train = ", ".join(f"{k} {v:.4g}" for k, v in train_means.items())
        shown = ", ".join(f"{k} {v:.4g}" + ("%" if k in task.percent_metrics else "") for k, v in last_dev.items())
        logger.line(f"epoch {epoch}: train {shown_train}, dev {shown}"
                    f"{' (best)' if improved else ''}; {ep_stats['frames'] / el:.0f} {unit}/s, {el:.1f} s")
        st = state(stopped_early)
        if d.main:
            ckdir.mkdir(parents=True, exist_ok=True)
            ep_path = ckdir / f"epoch-{epoch}.pt"
            save_checkpoint(st, ep_path)
            if improved:
                copy_atomic(ep_path, ckdir / "best.pt")
            copy_atomic(ep_path, ckdir / "last.pt")
            keep = tcfg["keep_epochs"]
            if keep is not None:
                for n, p in epoch_checkpoints(exp)[:-keep]:
                    p.unlink(missing_ok=True)
        if stopped_early:
            logger.line(f"early stop: no better dev {metric_name} for {bad_epochs} epoch(s) "
                        f"(best {best:.4g} at epoch {best_epoch})")
        if max_steps is not None and step >= max_steps:
            done = True
    logger.close()
    _barrier(d)
    return TrainResult(exp, epoch, step, metric_name, best, best_epoch, stopped_early, last_dev)


def _new_sums(stat_names: tuple[str, ...]) -> dict:
    """Empty sums of a log window or an epoch: loss, normalizer, size (``frames``: in the
    task's unit, TrainData.unit), the task's stats, start time."""
    return {"loss": 0.0, "norm": 0.0, "frames": 0.0, **{k: 0.0 for k in stat_names}, "t": time.monotonic()}


def _means(acc: dict, stat_names: tuple[str, ...]) -> dict[str, float]:
    """The loss and the task's stats divided by the summed normalizer."""
    return {k: acc[k] / acc["norm"] if acc["norm"] else float("nan") for k in ("loss", *stat_names)}


def _sums(win: dict, ep_stats: dict, stat_names: tuple[str, ...]) -> dict:
    """The loss / norm / frame / stat sums of the log window and of the epoch (for a resume mid-epoch)."""
    return {name: {k: float(acc[k]) for k in ("loss", "norm", "frames", *stat_names)}
            for name, acc in (("window", win), ("epoch", ep_stats))}


def _stat_values(task: Task, stats: dict[str, float], stat_names: tuple[str, ...], seen: set[str],
                 last: bool) -> list[float]:
    """The task's batch stats in ``stat_names`` order (the same on every rank: they are all-reduced);
    0 for a stat another phase of the update gives. ``seen``: the stats of the update's earlier
    phases (updated); ``last``: the update's last phase, after which every stat was given once."""
    given = set(stats)
    if not given <= set(stat_names) or given & seen or (last and seen | given != set(stat_names)):
        raise TrainingError(f"the {task.name} task's loss gave stats {sorted(stats)}"
                            f"{f' after {sorted(seen)}' if seen else ''}, but its stat_names() "
                            f"are {sorted(stat_names)}" + (" (each given by one phase)" if seen else ""))
    seen |= given
    return [float(stats.get(k, 0.0)) for k in stat_names]


def _check_phases(task: Task, opts: dict[str, torch.optim.Optimizer]) -> tuple[str, ...]:
    """The task's :meth:`~asrkit.tasks.base.Task.phases`, checked against its optimizers."""
    phases = tuple(task.phases())
    if not phases:
        return ()
    unknown = [p for p in phases if p not in opts]
    if unknown or len(set(phases)) < len(phases) or set(phases) != set(opts):
        raise TrainingError(f"the {task.name} task's phases {list(phases)} must name each of its "
                            f"optimizers {list(opts)} once")
    return phases


def _params_of(opts: list[torch.optim.Optimizer]) -> list[torch.nn.Parameter]:
    """The parameters the optimizers ``opts`` step."""
    return [p for o in opts for g in o.param_groups for p in g["params"]]


def _other_lrs(scheds: dict[str, _Schedule]) -> dict[str, float]:
    """``lr_NAME`` of every optimizer after the first (whose lr is logged as ``lr``)."""
    return {f"lr_{name}": sc.lr for name, sc in list(scheds.items())[1:]}


def _named_state(objs: dict[str, Any]) -> dict:
    """One optimizer's (scheduler's) state as it is; several as ``{name: state}``."""
    if len(objs) == 1:
        return next(iter(objs.values())).state_dict()
    return {name: o.state_dict() for name, o in objs.items()}


def _load_named(objs: dict[str, Any], state: dict, what: str, path: Path) -> None:
    if len(objs) == 1:
        next(iter(objs.values())).load_state_dict(state)
        return
    if not isinstance(state, dict) or set(state) != set(objs):
        have = sorted(state) if isinstance(state, dict) else []
        raise TrainingError(f"{path}: the checkpoint's {what} states are {have}, but the task has "
                            f"{sorted(objs)}; resume with the same task and config or start a new --out")
    for name, o in objs.items():
        o.load_state_dict(state[name])


def _progress_columns(unit: str = "frames"):
    from rich.progress import TextColumn

    # the learning rate is in metrics.jsonl; the bar keeps room for the whole run's ETA
    return (TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[fps]:.0f} " + unit + "/s"),
            TextColumn("{task.fields[eta]}"))


class _Eta:
    """The time left for the whole run (all epochs, dev evaluations included),
    for the progress bar as ``ETA h:mm:ss`` (the bar's last column is this
    epoch's time left): the seconds per update so far in this process times
    the updates left (``train.max_steps`` or the epochs' batches)."""

    def __init__(self, epochs: int, steps_per_epoch: int, max_steps: int | None, step: int) -> None:
        self.epochs, self.steps_per_epoch, self.max_steps = epochs, steps_per_epoch, max_steps
        self.t0, self.step0 = time.monotonic(), step
        self.step = step

    def left(self, epoch: int, position: int, steps_this_epoch: int, step: int | None = None) -> str:
        if step is not None:
            self.step = step
        done = self.step - self.step0
        if done <= 0:
            return "ETA -:--:--"
        todo = max(0, steps_this_epoch - position) + max(0, self.epochs - epoch - 1) * self.steps_per_epoch
        if self.max_steps is not None:
            todo = min(todo, max(0, self.max_steps - self.step))
        secs = int(round((time.monotonic() - self.t0) / done * todo))
        return f"ETA {secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"


def _batches(ds, plan: list[tuple[list[int], float]], fn: Callable[[list], Any], workers: int):
    """Yield ``(batch, global_norm)`` for the planned batches, in order (``fn``: the task's collate)."""
    if workers <= 0:
        for idx, norm in plan:
            yield fn([ds[i] for i in idx]), norm
        return
    # an own generator: the loader must not draw from the global RNG (dropout's stream, saved for resume)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[idx for idx, _ in plan], collate_fn=fn,
                                         num_workers=workers, generator=torch.Generator().manual_seed(0))
    for batch, (_, norm) in zip(loader, plan):
        yield batch, norm


def _evaluate(task: Task, epoch: int, model: torch.nn.Module, ds: Any, refs: dict | None, units,
              exp: Path, d: distributed.Dist, device: torch.device, autocast) -> dict[str, float]:
    """The task's dev metrics and its end-of-epoch ones (``epoch`` 0-based), the
    model in eval mode without gradients; every rank takes part."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = dict(task.evaluate(model, ds, refs, units, device=device, autocast=autocast, dist=d))
            out.update(task.end_epoch(epoch, model, ds, refs, units, exp, device, dist=d))
    finally:
        model.train(was)
    return {k: float(v) for k, v in out.items()}
