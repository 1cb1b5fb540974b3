"""``asrkit train face``: identity classification of faces (or any image classes) with a
ResNet (:mod:`asrkit.models.resnet`), whose embedding serves open-set verification.

Input, units, batches and augmentation: :class:`asrkit.tasks.images.ImageTask`
(``--train DIR --dev DIR``, one sub-folder per identity; the dev identities
are the training ones). The model's head is ``model.head``: ``softmax``,
``arcface`` or ``cosface`` (``model.margin``, ``model.scale``).

Loss: the summed cross entropy (``model.label_smoothing``) of the global
batch's images over their number, on the logits with the margin applied to
each image's own class (margin heads). Dev, after each epoch: ``loss`` (the
cross entropy of the logits without margin), ``acc`` (top-1 identification
accuracy, %) and, when ``data.dev_pairs`` names a pairs file
(``img1 img2 label`` lines, or labels in ``data.dev_pairs_labels``; images
relative to the pairs file), ``auc``: the verification AUC (%) of the cosine
similarity of the two images' embeddings, as ``asrkit verify`` computes it.
``train.metric=auto`` is ``auc`` when there are dev pairs, else ``acc``.

The same embedding code serves ``asrkit verify`` (:func:`pair_scores`) and
``asrkit predict face`` (:func:`predict_classes`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asrkit.errors import ConfigError, DataError
from asrkit.tasks.base import TaskData, gather, register_task
from asrkit.tasks.images import ImageTask, eval_batch, image_batches, load_class_units

if TYPE_CHECKING:
    import torch

    from asrkit.data.images import ImageSet

__all__ = ["FaceExp", "FaceTask", "embed_images", "load_face_exp", "pair_scores", "predict_classes"]


class _OneProcess:
    rank, world_size, enabled, main = 0, 1, False, True


def _batches(ds: ImageSet, batch_size: int, dist=None) -> list[list[int]]:
    return image_batches(ds, batch_size, dist or _OneProcess())


def embed_images(model: torch.nn.Module, ds: ImageSet, *, batch_size: int = 128, device: Any = "cpu",
                 on_batch: Callable[[int], None] | None = None, dist=None) -> torch.Tensor:
    """Unit-length embeddings ``(N, D)`` (float32, on the CPU) of ``ds``'s images (this rank's
    batches only under ``dist``; the caller has the model in eval mode, under no_grad)."""
    import torch

    out = []
    for idx in _batches(ds, batch_size, dist):
        b = eval_batch(ds, idx).to(device)
        out.append(model.embed(b.images, normalize=True).float().cpu())      # (n, D)
        if on_batch is not None:
            on_batch(len(idx))
    return torch.cat(out) if out else torch.zeros(0, model.embed_dim)


def pair_scores(model: torch.nn.Module, ds: ImageSet, index: Sequence[tuple[int, int]], *,
                batch_size: int = 128, device: Any = "cpu",
                on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Cosine similarity ``(P,)`` of each pair ``(i, j)`` of ``ds``'s images (from
    :func:`asrkit.data.images.open_pair_images`)."""
    import torch

    emb = embed_images(model, ds, batch_size=batch_size, device=device, on_batch=on_batch)   # (N, D)
    ij = torch.as_tensor(list(index), dtype=torch.int64).reshape(-1, 2)               # (P, 2)
    return (emb[ij[:, 0]] * emb[ij[:, 1]]).sum(1)                                      # (P,)


def predict_classes(model: torch.nn.Module, ds: ImageSet, *, batch_size: int = 128, device: Any = "cpu",
                    on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Top-1 class index ``(N,)`` of each image of ``ds`` (no margin: plain cosine / softmax logits)."""
    import torch

    out = []
    for idx in _batches(ds, batch_size):
        b = eval_batch(ds, idx).to(device)
        out.append(model(b.images).argmax(1).cpu())
        if on_batch is not None:
            on_batch(len(idx))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def _shape(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{w}x{h} with {c} channel(s)"


@dataclass
class FaceData(TaskData):
    """:class:`TaskData` plus the dev verification pairs: ``(their images, (i, j) per pair,
    labels (P,))`` or None."""

    dev_pairs: tuple | None = None


@register_task
class FaceTask(ImageTask):
    name = "face"
    help = "Face identification (any image classes) with a ResNet: softmax, ArcFace or CosFace head; verification."
    conf_example = "conf/face_resnet.yaml"
    model_types = ("resnet",)
    metrics = {"acc": "max", "auc": "max"}
    percent_metrics = ("acc", "auc")

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        self.dev_pairs: tuple[ImageSet, list[tuple[int, int]], torch.Tensor] | None = None

    @classmethod
    def defaults(cls) -> dict:
        d = super().defaults()
        d["model"] = {"type": "resnet", "impl": "scratch"}
        d["optim"] = {"warmup_steps": 100, "weight_decay": 5e-4}
        return d

    @classmethod
    def config_keys(cls) -> dict:
        keys = super().config_keys()
        keys["data"].update({
            "dev_pairs": (None, (str, type(None)), None),         # pairs file: dev verification AUC each epoch
            "dev_pairs_labels": (None, (str, type(None)), None),  # its labels, when not on the pairs lines
        })
        return keys

    def auto_metric(self) -> str:
        return "auc" if self.cfg["data"]["dev_pairs"] else "acc"

    def validate(self) -> None:
        super().validate()
        d = self.cfg["data"]
        if self.cfg["train"]["metric"] == "auc" and not d["dev_pairs"]:
            raise ConfigError("config key 'train.metric': 'auc' needs dev verification pairs (data.dev_pairs)")
        if d["dev_pairs_labels"] and not d["dev_pairs"]:
            raise ConfigError("config key 'data.dev_pairs_labels': given without data.dev_pairs")

    # ------------------------------------------------------------------ data
    def open_data(self, train: str, dev: str) -> FaceData:
        from dataclasses import asdict

        data = super().open_data(train, dev)
        if len(data.train.classes) < 2:
            raise DataError(f"{train}: one class folder ({data.train.classes[0]}/); the face task classifies "
                            f"among at least 2 identities, one sub-folder each")
        d = self.cfg["data"]
        pairs = None
        if d["dev_pairs"]:
            import torch

            from asrkit.data.images import open_pair_images, read_pairs
            from asrkit.errors import InputError

            path = Path(d["dev_pairs"])
            plist = read_pairs(path, d["dev_pairs_labels"])
            if any(p.label is None for p in plist):
                raise InputError(f"{path}: the dev pairs need labels ('img1 img2 label' lines, or "
                                 f"data.dev_pairs_labels)")
            ds, index = open_pair_images(path.parent, plist, channels=d["channels"])
            if ds.shape != data.train.shape:
                raise DataError(f"{path}: the pair images are {_shape(ds.shape)} ({ds.names[0]}), the training "
                                f"images {_shape(data.train.shape)}; give images of one size")
            pairs = (ds, index, torch.tensor([p.label for p in plist]))
        return FaceData(**{f: getattr(data, f) for f in asdict(data)}, dev_pairs=pairs)

    def train_data(self, data: FaceData, units, model, *, seed: int, dist):
        # the trainer opens the data with another task object: the pairs come with the data
        self.dev_pairs = getattr(data, "dev_pairs", None)
        return super().train_data(data, units, model, seed=seed, dist=dist)

    # ------------------------------------------------------------------ training
    def setup(self, model: torch.nn.Module, device: torch.device) -> None:
        from asrkit.nn import CrossEntropyLoss

        c = model.config
        self.crit = CrossEntropyLoss(reduction="sum", label_smoothing=c["label_smoothing"], impl=c["impl"])

    def loss(self, net, batch, device, autocast):
        with autocast():
            logits = net(batch.images, batch.labels)             # (N, C), the margin on each image's class
        return self.crit(logits.float(), batch.labels), float(len(batch)), {}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        loss_sum = correct = n = 0.0
        for idx in image_batches(dev_ds, self.cfg["data"]["batch_size"], dist):
            b = eval_batch(dev_ds, idx).to(device)
            with autocast():
                logits = model(b.images).float()                 # (N, C), no margin
            loss_sum += float(self.crit(logits, b.labels))
            correct += float((logits.argmax(1) == b.labels).sum())
            n += len(idx)
        parts = gather((loss_sum, correct, n), dist)
        loss_sum, correct, n = (sum(p[k] for p in parts) for k in range(3))
        out = {"loss": loss_sum / n if n else float("nan"), "acc": 100.0 * correct / n if n else 0.0}
        if self.dev_pairs is not None:
            from asrkit.score.verification import auc

            ds, index, labels = self.dev_pairs
            with autocast():
                scores = pair_scores(model, ds, index, batch_size=self.cfg["data"]["batch_size"], device=device)
            out["auc"] = 100.0 * auc(scores.numpy(), labels.numpy())
        return out


# ------------------------------------------------------------------ a trained face exp
class FaceExp:
    """A trained face model loaded from its exp dir (:func:`load_face_exp`)."""

    def __init__(self, path, config: dict, model: torch.nn.Module, classes: list[str], checkpoint) -> None:
        self.path, self.config, self.model, self.classes, self.checkpoint = path, config, model, classes, checkpoint

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def channels(self) -> int:
        """The image channels the model takes (images are converted to them on reading)."""
        return int(self.config["model"]["in_channels"])

    def check_images(self, ds: ImageSet, where: Any) -> None:
        """InputError naming ``where`` when ``ds``'s images are not the size the model takes."""
        from asrkit.errors import InputError

        h, w = self.model.image_size
        if tuple(ds.shape[1:]) != (h, w):
            raise InputError(f"{where}: the images are {ds.shape[2]}x{ds.shape[1]} ({ds.names[0]}), the model "
                             f"{self.path} takes {w}x{h}")

    def describe(self) -> str:
        """``"EXP: best.pt, 500 classes, cpu"`` for the log line of a command."""
        return f"{self.path}: {self.checkpoint.name}, {len(self.classes)} classes, {self.device}"


def load_face_exp(exp: Any, *, checkpoint: str = "best", device: str = "auto", impl: str | None = None,
                  command: str = "this command") -> FaceExp:
    """The model (eval mode), config and classes of an exp dir written by ``asrkit train face``;
    one clear line for anything else (a GAN or speech exp: :class:`UsageError`)."""
    from pathlib import Path

    from asrkit.config import load_saved_config
    from asrkit.errors import InputError, UsageError
    from asrkit.models import checkpoint_path, load_model

    path = Path(exp)
    if not path.is_dir():
        raise InputError(f"{path}: no such exp dir")
    if impl is not None and impl not in ("scratch", "native"):
        raise UsageError(f"--impl must be scratch or native, got '{impl}'")
    config = load_saved_config(path)
    task = config.get("task")
    if task != FaceTask.name:
        raise UsageError(f"{path}: is a {task} exp (task: {task}); {command} needs a face model "
                         f"(an exp dir of 'asrkit train face')")
    model, config = load_model(path, checkpoint=checkpoint, device=device, impl=impl)
    classes = list(load_class_units(path / "units").units)
    if len(classes) != int(config["model"]["num_classes"]):
        raise InputError(f"{path}/units: lists {len(classes)} classes but the model has "
                         f"{config['model']['num_classes']}; the units dir does not belong to this model")
    return FaceExp(path, config, model, classes, checkpoint_path(path, checkpoint))
