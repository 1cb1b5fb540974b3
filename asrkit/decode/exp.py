"""Loading a trained exp dir for decoding: model, units, CMVN, device.

    exp = load_exp("exp/ctc", checkpoint="best", device="auto", impl=None, task="ctc")
    exp = load_exp("exp/las", task=ATTENTION_TASKS)          # las or transformer
    exp.model, exp.units, exp.cmvn, exp.device, exp.config

``checkpoint`` is a name in ``EXP/checkpoints/`` (``best``, ``last``,
``epoch-3``) or a path to a ``.pt`` file. ``impl`` overrides the layer
implementation the model was trained with (``scratch`` | ``native``): one
checkpoint decodes with either to the same greedy output.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from asrkit.decode.emissions import resolve_device
from asrkit.data.units import UnitMap, load_units
from asrkit.errors import AsrkitError, ConfigError, InputError, UsageError
from asrkit.nn import IMPLS

__all__ = ["ATTENTION_TASKS", "LoadedExp", "exp_task", "load_exp"]

#: Tasks whose models decode with :mod:`asrkit.decode.attention` (sequence-to-sequence models).
ATTENTION_TASKS = ("las", "transformer")


@dataclass
class LoadedExp:
    """A trained model ready to decode with.

    Attributes:
        path: the exp dir.
        config: its resolved ``config.yaml``.
        model: the model in eval mode on ``device``.
        units: id <-> unit symbols and the conversion to output tokens.
        device: where the model runs.
        checkpoint: the checkpoint file loaded.
    """

    path: Path
    config: dict[str, Any]
    model: torch.nn.Module
    units: UnitMap
    device: torch.device
    checkpoint: Path

    @property
    def task(self) -> str:
        return str(self.config.get("task"))

    @property
    def cmvn(self) -> Optional[str]:
        return (self.config.get("data") or {}).get("cmvn")

    @property
    def norm_vars(self) -> bool:
        return bool((self.config.get("data") or {}).get("norm_vars", True))

    @property
    def input_dim(self) -> Optional[int]:
        return (self.config.get("model") or {}).get("input_dim")

    @property
    def subsampling(self) -> int:
        return int(getattr(self.model, "subsampling", 1))


def load_exp(exp: str | os.PathLike, *, checkpoint: str = "best", device: str = "auto",
             impl: Optional[str] = None, task: Optional[str | Sequence[str]] = None,
             quantize: Optional[str] = None) -> LoadedExp:
    """Load the model, config and units of a trained exp dir.

    ``task``: the task (or tasks) the caller decodes: ``ctc``, ``frame``, ``las``,
    ``transformer`` (``ATTENTION_TASKS`` for both attention models).
    Raises :class:`InputError` for a missing exp dir / config / checkpoint /
    units, :class:`UsageError` for a bad ``impl`` or an exp dir of another
    ``task`` than asked for (a frame classifier given to ``asrkit decode``).
    ``quantize="int8"``: the model's Linear and recurrent layers as dynamic int8 for CPU decoding
    (:mod:`asrkit.decode.quantize`; the other layers then run torch's kernels, whatever ``impl``
    says; a :class:`UsageError` on another device than the CPU).
    """
    from asrkit.models import checkpoint_path, load_model
    from asrkit.config import load_saved_config

    path = Path(exp)
    if not path.is_dir():
        raise InputError(f"{path}: no such exp dir")
    if impl is not None and impl not in IMPLS:
        raise UsageError(f"--impl must be scratch or native, got '{impl}'")
    config = load_saved_config(path)
    have = config.get("task")
    wanted = (task,) if isinstance(task, str) else tuple(task or ())
    if wanted and have not in wanted:
        if "ctc" in wanted and have == "frame":
            raise UsageError(f"{path}: is a frame classifier (task: frame); use 'asrkit predict frame {path} FEATS'")
        if "frame" in wanted and have == "ctc":
            raise UsageError(f"{path}: is a CTC model (task: ctc); use 'asrkit decode {path} FEATS'")
        if "ctc" in wanted and have in ATTENTION_TASKS:
            raise UsageError(f"{path}: is an attention model (task: {have}); this needs a CTC model (task: ctc)")
        expected = " or ".join(repr(t) for t in wanted)
        raise ConfigError(f"{path}/config.yaml: task is {have!r}, expected {expected}")
    dev = resolve_device(device)
    if quantize is not None:
        from asrkit.decode.quantize import check_quantize

        check_quantize(quantize, dev)  # before the model loads
    model, config = load_model(path, checkpoint=checkpoint, device=dev, impl=impl)
    ckpt = checkpoint_path(path, checkpoint)
    model.eval()
    units = load_units(path, config)
    n_classes = (config.get("model") or {}).get("num_classes")
    if n_classes is not None and int(n_classes) != units.num_classes:
        raise ConfigError(f"{path}: the model has {n_classes} output classes but {path / 'units'} lists "
                          f"{units.num_classes}; the units dir does not belong to this model")
    if quantize is not None:
        from asrkit import log
        from asrkit.decode.quantize import quantize_model

        log.info(f"--quantize {quantize}: {quantize_model(model, quantize).describe()}")
    return LoadedExp(path=path, config=config, model=model, units=units, device=dev, checkpoint=ckpt)


def exp_task(exp: str | os.PathLike) -> Optional[str]:
    """The ``task`` of an exp dir's ``config.yaml`` (which decoder runs), None when there is no
    readable config (:func:`load_exp` then says what is wrong)."""
    from asrkit.config import load_saved_config

    try:
        task = load_saved_config(exp).get("task")
    except (AsrkitError, OSError):
        return None
    return None if task is None else str(task)
