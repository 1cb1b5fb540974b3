"""asrkit.tasks: what ``asrkit train NAME`` learns, one small class per task.

    from asrkit.tasks import get_task, TASKS
    task = get_task("ctc")(cfg)      # units, targets, model, batch -> loss, dev metrics, optimizers

* ``frame`` (:class:`FrameTask`): frame classification from the store's ``ali``; dev accuracy.
* ``ctc`` (:class:`CTCTask`): CTC on phone, char or bpe units; dev PER or WER/CER.
* ``las`` (:class:`LASTask`): Listen, Attend and Spell; dev PER or WER/CER, attention diagonality.
* ``transformer`` (:class:`TransformerTask`): joint CTC/attention; the same dev metrics.
* ``lm`` (:class:`LMTask`): a neural language model on text (word, char or bpe units); dev perplexity.
* ``face`` (:class:`FaceTask`): identity classification of image folders with a ResNet (softmax, ArcFace
  or CosFace head); dev accuracy and verification AUC.
* ``gan`` (:class:`GanTask`): a DCGAN on an image folder, discriminator and generator phases; dev pixel
  Fréchet distance and a sample grid per epoch.

The contract (every hook, and the order the trainer calls them) is
:class:`asrkit.tasks.base.Task`; :class:`asrkit.tasks.store.StoreTask` is the
data side of the tasks that learn from feature stores (all but ``lm``), and
:class:`asrkit.tasks.tokens.TokenTask` the shared base of those that learn
transcripts. Importing this package
registers the built-in tasks; a new task is a module here with a
``@register_task`` class, imported below.
"""
from __future__ import annotations

from asrkit.tasks.base import (
    TASKS,
    BatchPlan,
    Task,
    TaskData,
    TrainData,
    dev_batches,
    gather,
    get_task,
    register_task,
    task_names,
)
from asrkit.tasks.store import StoreTask
from asrkit.tasks.frame import FrameTask
from asrkit.tasks.ctc import CTCTask  # noqa: I001 - registration order: frame, then ctc
from asrkit.tasks.las import LASTask
from asrkit.tasks.transformer import TransformerTask
from asrkit.tasks.lm import LMTask
from asrkit.tasks.tokens import TokenTask
from asrkit.tasks.face import FaceTask
from asrkit.tasks.gan import GanTask

__all__ = ["TASKS", "BatchPlan", "CTCTask", "FaceTask", "FrameTask", "GanTask", "LASTask", "LMTask", "StoreTask", "Task",
           "TaskData", "TokenTask",
           "TrainData", "TransformerTask", "dev_batches", "gather", "get_task", "register_task", "task_names"]
