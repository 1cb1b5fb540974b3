"""The data side of the tasks that learn from feature stores (frame, ctc, las,
transformer): :class:`StoreTask`.

``--train`` and ``--dev`` are feature stores (``asrkit featurize``) of the same
dimension, which is the model's ``input_dim``. The training set is the
training store's utterances (those longer than ``data.max_utt_frames`` left
out), with the task's targets (:meth:`StoreTask.targets`), less those the
model cannot learn (:meth:`StoreTask.filter_train`). Items are utterances
(:class:`asrkit.data.dataset.UtteranceDataset`: CMVN on read, SpecAugment
seeded by ``(seed, epoch, utterance)``), batched by total padded frames with
length buckets (:class:`asrkit.data.dataset.FrameBatchSampler`); the loss
normalizer of a batch is the sum of :meth:`StoreTask.sampler_weights` (the
frames by default).
"""
from __future__ import annotations

from abc import abstractmethod
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from asrkit.errors import DataError
from asrkit.tasks.base import Task, TaskData, TrainData

if TYPE_CHECKING:
    import numpy as np
    import torch

    from asrkit.data.units import UnitMap

__all__ = ["StoreTask", "open_store"]


def open_store(path: str, what: str):
    """The feature store at ``path``; DataError when it has no utterances."""
    from asrkit.data.feature_store import FeatureStore

    st = FeatureStore(path)
    if len(st) == 0:
        raise DataError(f"{path}: the {what} set is empty (0 utterances in the feature store)")
    return st


class StoreTask(Task):
    """A task whose ``--train`` / ``--dev`` are feature stores and whose items
    are utterances. Subclasses implement :meth:`targets` (and may override
    :meth:`filter_train`, :meth:`sampler_weights`)."""

    #: collate batches with per-frame targets (B, T) padded with -100, instead of concatenated token ids
    frame_targets: ClassVar[bool] = False

    # ------------------------------------------------------------------ the data hooks
    def open_data(self, train: str, dev: str) -> TaskData:
        train_store = open_store(train, "training")
        dev_store = open_store(dev, "dev")
        if dev_store.dim != train_store.dim:
            raise DataError(f"{dev}: {dev_store.dim}-dim features but {train} has {train_store.dim}-dim")
        data = TaskData(train_store, dev_store, str(train), str(dev), input_dim=train_store.dim,
                        feature_conf=train_store.conf or None)
        self.perturb(data)  # a perturbation the features cannot take stops here, before any work
        return data

    def train_data(self, data: TaskData, units: UnitMap, model: torch.nn.Module, *, seed: int,
                   dist) -> TrainData:
        from asrkit import log
        from asrkit.data.dataset import FrameBatchSampler, UtteranceDataset, collate
        from asrkit.features.specaugment import SpecAugment

        dcfg, fcfg = self.cfg["data"], self.cfg["features"]
        train_store, dev_store = data.train, data.dev
        train_utts = train_store.keys()
        if dcfg["max_utt_frames"] is not None:
            n0 = len(train_utts)
            train_utts = [u for u in train_utts if train_store.num_frames(u) <= dcfg["max_utt_frames"]]
            if dist.main and len(train_utts) < n0:
                log.warn(f"{n0 - len(train_utts)} training utterance(s) longer than data.max_utt_frames left out")
        dev_utts = dev_store.keys()
        train_tg, _ = self.targets(train_store, train_utts, units, "train")
        dev_tg, dev_refs = self.targets(dev_store, dev_utts, units, "dev")
        train_utts, dropped = self.filter_train(train_store, train_utts, train_tg, model)
        if dropped and dist.main:
            log.warn(dropped)
        if not train_utts:
            raise DataError(f"{data.train_path}: the training set is empty after filtering (see the warnings above)")
        aug = None
        if fcfg["specaugment"]:
            aug = SpecAugment(fcfg["freq_masks"], fcfg["freq_width"], fcfg["time_masks"], fcfg["time_width"],
                              fcfg["time_ratio"])
        perturb = self.perturb(data)
        train_ds = UtteranceDataset(train_store, train_utts, train_tg, dcfg["cmvn"], dcfg["norm_vars"], aug, seed,
                                    perturb)
        dev_ds = UtteranceDataset(dev_store, dev_utts, dev_tg, dcfg["cmvn"], dcfg["norm_vars"], None, seed)
        weights = self.sampler_weights(train_utts, train_tg)
        plan = FrameBatchSampler(train_ds.lengths, dcfg["max_frames"], dcfg["buckets"], dcfg["shuffle"], seed,
                                 dist.rank, dist.world_size, weights)
        return TrainData(train_ds, plan, partial(collate, frame_targets=self.frame_targets), dev_ds, dev_refs,
                         train_items=f"{len(train_utts)} utterances", dev_items=f"{len(dev_utts)} utterances")

    def perturb(self, data: TaskData):
        """The training features' :class:`asrkit.features.perturb.Perturb`
        (``features.vtlp``, ``features.time_stretch``) or None when both are off."""
        from asrkit.errors import ConfigError
        from asrkit.features.perturb import MelGeometry, Perturb

        fcfg = self.cfg["features"]
        if not (fcfg["vtlp"] or fcfg["time_stretch"]):
            return None
        if fcfg["time_stretch"] and self.frame_targets:
            raise ConfigError(f"features.time_stretch changes the number of frames, but the {self.name} task "
                              f"has one target per frame; turn it off")
        geom = None
        if fcfg["vtlp"]:
            geom = MelGeometry.from_conf(data.feature_conf or {}, fcfg["vtlp_low"], fcfg["vtlp_high"],
                                         where=f"{data.train_path}/conf.yaml")
        return Perturb(geom, fcfg["vtlp_warp"] if geom is not None else None,
                       fcfg["stretch_rate"] if fcfg["time_stretch"] else None)

    # ------------------------------------------------------------------ targets
    @abstractmethod
    def targets(self, store, utts: list[str], units: UnitMap,
                split: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]] | None]:
        """``(utt -> target ids, utt -> reference tokens for scoring | None)``
        of ``utts`` in ``store``; ``split`` is ``"train"`` or ``"dev"``.
        Errors name the file and the utterance."""

    def filter_train(self, store, utts: list[str], targets: dict[str, np.ndarray],
                     model: torch.nn.Module) -> tuple[list[str], str | None]:
        """The training utterances to keep and a warning line about the others
        (None when all are kept). Default: keep all."""
        return utts, None

    def sampler_weights(self, utts: list[str], targets: dict[str, np.ndarray]) -> list[float] | None:
        """Per utterance, its share of the loss normalizer (the batch sampler sums
        them per global batch); None: its frames."""
        return None
