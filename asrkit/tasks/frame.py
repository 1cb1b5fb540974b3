"""``asrkit train frame``: frame-level classification (:class:`asrkit.models.FrameMLP`)
with labels from the feature store's ``ali``.

Units: the exp's ``units/`` holds ``units.txt`` with ``<blank>`` at id 0
(never a target, so the file reads with :func:`asrkit.data.tokenizer.read_units`)
and the labels after it. When every label is one of the phone units (``sil``
+ 39 ARPAbet), the units are exactly the phone tokenizer's (a full tokenizer
folder is saved), so a frame classifier and a phone CTC model share ids.
Otherwise the labels follow in sorted order (numerically when they are all
integers). ``units.dir`` uses an existing units folder.

Loss: the summed cross entropy of every labelled frame of the global batch
divided by its frames. Dev: loss and frame accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from asrkit.data.units import UnitMap, save_units
from asrkit.errors import DataError
from asrkit.tasks.base import dev_batches, gather, register_task
from asrkit.tasks.store import StoreTask

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["FrameTask", "frame_targets", "frame_units"]


def _label_key(s: str):
    return (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s)


def frame_units(train_store, units_dir: str | None, dev_store=None) -> UnitMap:
    """Units of the frame task: from ``units_dir`` or from the ``ali`` labels of
    the training store and (when given and labelled) the dev store: a class the
    training set happens to lack still gets its output, and dev frames of it
    count as errors instead of stopping the run."""
    from asrkit.data.tokenizer import BLANK, PHONE_UNITS, Tokenizer
    from asrkit.data.units import load_units_dir

    if units_dir is not None:
        return load_units_dir(units_dir, "ali", blank_first=True)
    ali = train_store.ali
    if ali is None:
        raise DataError(f"{train_store.path}: no 'ali' file; the frame task needs frame labels "
                        f"(copy the data dir's ali into the feature store, or re-run asrkit featurize)")
    labels: set[str] = set()
    for store in (train_store, dev_store):
        seen = {s for v in (getattr(store, "ali", None) or {}).values() for s in v.split()}
        if store is train_store and not seen:
            raise DataError(f"{train_store.path}/ali: has no labels")
        if BLANK in seen:  # the error names the store that has it
            raise DataError(f"{store.path}/ali: '{BLANK}' cannot be a frame label")
        labels |= seen
    if labels <= set(PHONE_UNITS[1:]):
        from asrkit.data.lexicon import Lexicon

        tok = Tokenizer("phone", PHONE_UNITS, lexicon=Lexicon.default(),
                        config={"lexicon": {"user": None, "cmudict": True}})
        return UnitMap("ali", list(PHONE_UNITS), tok)
    if all(s.isdigit() and s == str(int(s)) for s in labels):
        # integer labels index a fixed list (the course's older years): every id up to the largest is a
        # class, so a phone that a small training set happens to lack keeps its slot for dev and test
        return UnitMap("ali", [BLANK, *(str(i) for i in range(max(int(s) for s in labels) + 1))])
    return UnitMap("ali", [BLANK, *sorted(labels, key=_label_key)])


def frame_targets(store, utts: list[str], units: UnitMap) -> dict[str, np.ndarray]:
    """utt -> frame label ids ``(T,)``; errors name the utterance."""
    import numpy as np

    ali = store.ali
    if ali is None:
        raise DataError(f"{store.path}: no 'ali' file; the frame task needs frame labels")
    out: dict[str, np.ndarray] = {}
    for u in utts:
        line = ali.get(u)
        if line is None:
            raise DataError(f"{store.path}/ali: no labels for utterance '{u}'; add its ali line "
                            f"or remove the utterance from the store")
        labs = line.split()
        ids = np.empty(len(labs), dtype=np.int64)
        for k, s in enumerate(labs):
            i = units.id_of(s)
            if i is None or i == 0:
                raise DataError(f"{store.path}/ali: utterance '{u}' frame {k}: label '{s}' is out of range "
                                f"of the units ({units.num_classes - 1} labels: "
                                f"{' '.join(units.units[1:8])}{' ...' if units.num_classes > 8 else ''})")
            ids[k] = i
        t = store.num_frames(u)
        if len(ids) != t:
            raise DataError(f"{store.path}/ali: utterance '{u}' has {len(ids)} labels but {t} feature frames; "
                            f"the alignment must have one label per frame of the features")
        out[u] = ids
    return out


@register_task
class FrameTask(StoreTask):
    name = "frame"
    help = "Frame-level classification (MLP over +-K frames) with labels from the store's ali."
    train_needs = "its 'ali' frame labels"
    conf_example = "e.g. conf/frame_mlp.yaml"
    model_types = ("frame_mlp",)
    unit_kinds = ("ali", None)
    metrics = {"acc": "max"}
    frame_targets = True

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {"type": "frame_mlp", "impl": "scratch", "context": 5, "hidden": [512, 512, 512],
                          "dropout": 0.1},
                "units": {"kind": "ali"},
                "features": {"specaugment": False},
                "data": {"max_frames": 40000},
                "optim": {"warmup_steps": 100}}

    def make_units(self, train_store, units_dir: Path, dev_store=None) -> None:
        src = self.cfg["units"]["dir"]
        save_units(frame_units(train_store, src, dev_store), units_dir, src)

    def make_units_from(self, data, units_dir: Path) -> None:
        self.make_units(data.train, units_dir, data.dev)  # a label only dev has still gets its class

    def load_units(self, units_dir: Path) -> UnitMap:
        from asrkit.data.units import load_units_dir

        return load_units_dir(units_dir, "ali", blank_first=True)

    def targets(self, store, utts, units, split):
        return frame_targets(store, utts, units), None

    def setup(self, model: torch.nn.Module, device: torch.device) -> None:
        from asrkit.nn import CrossEntropyLoss

        self.crit = CrossEntropyLoss(reduction="sum", ignore_index=-100, impl=model.config["impl"])

    def loss(self, net, batch, device, autocast):
        with autocast():
            logits, _ = net(batch.feats, batch.lengths)  # (B, T, C)
        C = logits.shape[-1]
        return self.crit(logits.float().reshape(-1, C), batch.targets.reshape(-1)), float(batch.num_frames), {}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        from asrkit.data.dataset import collate

        loss_sum = correct = frames = 0.0
        for idx in dev_batches(dev_ds, self.cfg["data"]["max_frames"], dist):
            b = collate([dev_ds[i] for i in idx], frame_targets=True).to(device)
            with autocast():
                logits, _ = model(b.feats, b.lengths)
            C = logits.shape[-1]
            flat = logits.float().reshape(-1, C)  # (B*T, C)
            tgt = b.targets.reshape(-1)
            loss_sum += float(self.crit(flat, tgt))
            valid = tgt != -100
            correct += float((flat.argmax(-1)[valid] == tgt[valid]).sum())
            frames += float(valid.sum())
        parts = gather((loss_sum, correct, frames), dist)
        loss_sum, correct, frames = (sum(p[k] for p in parts) for k in range(3))
        return {"loss": loss_sum / frames if frames else float("nan"),
                "acc": 100.0 * correct / frames if frames else 0.0}
