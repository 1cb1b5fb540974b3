"""``asrkit train las``: Listen, Attend and Spell (:class:`asrkit.models.las.LAS`)
on phone, char or bpe units; the loss and dev metrics of
:class:`asrkit.tasks.seq2seq.Seq2SeqTask`.

Teacher forcing: in epoch ``e`` (0-based) the speller is fed the true previous
token with probability ``tf_start + (tf_end - tf_start) * min(1, e / tf_decay_epochs)``
and its own previous best guess otherwise (the ``model`` section's ``tf_*`` keys).
"""
from __future__ import annotations

from asrkit.tasks.base import register_task
from asrkit.tasks.seq2seq import Seq2SeqTask

__all__ = ["LASTask", "teacher_forcing_rate"]


def teacher_forcing_rate(epoch: int, start: float, end: float, decay_epochs: int) -> float:
    """The teacher-forcing rate of epoch ``epoch`` (0-based): linear from ``start`` to ``end``."""
    if decay_epochs <= 0:
        return float(end)
    return float(start + (end - start) * min(1.0, epoch / decay_epochs))


@register_task
class LASTask(Seq2SeqTask):
    name = "las"
    help = "Listen, Attend and Spell (pyramidal BiLSTM listener, attention, LSTM speller) on phone, char or bpe units."
    conf_example = "conf/las.yaml"
    model_types = ("las",)

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {"type": "las", "impl": "scratch"},
                "units": {"kind": "char"},
                "features": {"specaugment": False}}

    def start_epoch(self, epoch: int) -> None:
        m = self.model_settings()
        self.tf_rate = teacher_forcing_rate(epoch, m["tf_start"], m["tf_end"], m["tf_decay_epochs"])
