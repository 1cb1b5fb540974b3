"""``asrkit train transformer``: joint CTC/attention
(:class:`asrkit.models.transformer.TransformerS2S`: Conv2d x4, Transformer or
Conformer encoder with a CTC head, Transformer decoder) on phone, char or bpe
units; the loss and dev metrics of :class:`asrkit.tasks.seq2seq.Seq2SeqTask`.

With a CTC head (``model.ctc_weight > 0``), utterances with more targets than
encoder frames cannot be aligned by CTC and are left out of training, as in
``asrkit train ctc``.
"""
from __future__ import annotations

from asrkit.tasks.base import register_task
from asrkit.tasks.seq2seq import Seq2SeqTask
from asrkit.tasks.tokens import drop_unalignable

__all__ = ["TransformerTask"]


@register_task
class TransformerTask(Seq2SeqTask):
    name = "transformer"
    help = "Joint CTC/attention Transformer (Transformer or Conformer encoder + CTC head, Transformer decoder)."
    conf_example = "conf/transformer.yaml, conf/conformer_transformer.yaml"
    model_types = ("transformer",)

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {"type": "transformer", "impl": "scratch"},
                "units": {"kind": "char"},
                "features": {"specaugment": True},
                "optim": {"scheduler": "noam", "warmup_steps": 2500, "betas": [0.9, 0.98]}}

    def filter_train(self, store, utts, targets, model):
        if not getattr(model, "has_ctc", False):
            return utts, None
        return drop_unalignable(store, utts, targets, model)
