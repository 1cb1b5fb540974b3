"""Learning-rate schedulers: StepLR, CosineAnnealingLR, LinearWarmupCosine,
ReduceLROnPlateau, Noam, WarmupLR. Each sets ``group["lr"]`` of any ``torch.optim.Optimizer``.

Call ``scheduler.step()`` once per epoch (or per update for the warmup ones),
after ``optimizer.step()``, as with torch's schedulers. Constructing a
scheduler applies its value for step 0, as torch does.
"""
from __future__ import annotations

import math
from typing import Any

import torch


class LRScheduler:
    """Base: ``lr_i = get_lr()[i]`` from the closed form at ``last_epoch``."""

    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError("param 'initial_lr' is not specified in param_groups when resuming")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """``lr = base * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """``lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2`` (periodic past T_max, as torch)."""

    def __init__(self, optimizer: torch.optim.Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearWarmupCosine(LRScheduler):
    """Linear warmup from 0 to ``base`` over ``warmup_steps``, then cosine decay to
    ``eta_min`` at ``total_steps`` (held there afterwards)::

        step < warmup:  lr = base * step / warmup
        otherwise:      lr = eta_min + (base - eta_min) (1 + cos(pi * min(1, (step - warmup) / (total - warmup)))) / 2
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                 eta_min: float = 0.0, last_epoch: int = -1) -> None:
        if warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")
        self.warmup_steps, self.total_steps, self.eta_min = warmup_steps, total_steps, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        s = self.last_epoch
        if s < self.warmup_steps:
            return [b * s / self.warmup_steps for b in self.base_lrs]
        progress = min(1.0, (s - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        c = (1 + math.cos(math.pi * progress)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class Noam(LRScheduler):
    """The Transformer schedule (Vaswani et al. 2017), scaled by the optimizer's lr::

        lr = base * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5),  step = epoch + 1

    With ``lr=1.0`` in the optimizer this is the paper's schedule; it peaks at
    ``step = warmup_steps``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, d_model: int, warmup_steps: int = 4000,
                 last_epoch: int = -1) -> None:
        self.d_model, self.warmup_steps = d_model, warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        s = self.last_epoch + 1
        f = self.d_model ** -0.5 * min(s ** -0.5, s * self.warmup_steps ** -1.5)
        return [b * f for b in self.base_lrs]


class WarmupLR(LRScheduler):
    """Noam normalized to peak at the optimizer's lr (ESPnet's ``WarmupLR``): a
    linear warmup to ``base`` at ``step = warmup_steps``, then decay as
    ``1 / sqrt(step)``::

        lr = base * warmup^0.5 * min(step^-0.5, step * warmup^-1.5),  step = epoch + 1
           = base * min(step / warmup, sqrt(warmup / step))

    It is :class:`Noam` with its ``d_model^-0.5`` replaced by ``warmup^0.5``,
    so the peak is the optimizer's lr whatever the model width.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, last_epoch: int = -1) -> None:
        if warmup_steps <= 0:
            raise ValueError(f"need warmup_steps > 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        s, w = self.last_epoch + 1, self.warmup_steps
        f = w ** 0.5 * min(s ** -0.5, s * w ** -1.5)
        return [b * f for b in self.base_lrs]


class ReduceLROnPlateau:
    """Multiply the lr by ``factor`` once the metric has not improved for ``patience``
    epochs (same rules and arguments as ``torch.optim.lr_scheduler.ReduceLROnPlateau``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | list[float] = 0.0, eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError(f"mode {mode} is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold mode {threshold_mode} is unknown!")
        self.optimizer = optimizer
        n = len(optimizer.param_groups)
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * n
        if len(self.min_lrs) != n:
            raise ValueError(f"expected {n} min_lrs, got {len(self.min_lrs)}")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self.cooldown_counter = 0
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def _is_better(self, a: float) -> bool:
        if self.mode == "min":
            return a < (self.best * (1 - self.threshold) if self.threshold_mode == "rel"
                        else self.best - self.threshold)
        return a > (self.best * (1 + self.threshold) if self.threshold_mode == "rel"
                    else self.best + self.threshold)

    def step(self, metrics: float | torch.Tensor) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(state_dict)
