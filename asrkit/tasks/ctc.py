"""``asrkit train ctc``: a CTC model (:class:`asrkit.models.CTCModel`) on
phone, char or bpe units.

Loss: the sum of the per-utterance CTC losses over the global batch divided
by its target tokens. Utterances with more targets than output frames (after
subsampling) cannot be aligned and are left out of training. Dev: loss and
greedy (best path) PER, or WER and CER.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from asrkit.tasks.base import dev_batches, gather, register_task
from asrkit.tasks.tokens import TokenTask, drop_unalignable, score_tokens

if TYPE_CHECKING:
    import torch

__all__ = ["CTCTask"]


@register_task
class CTCTask(TokenTask):
    name = "ctc"
    help = "CTC model (conv subsampling + BiLSTM/BiGRU/Conformer) on phone, char or bpe units."
    conf_example = "conf/ctc_bilstm.yaml, conf/ctc_conformer.yaml"
    model_types = ("ctc",)

    @classmethod
    def defaults(cls) -> dict:
        return {"model": {"type": "ctc", "impl": "scratch", "subsampling": 4, "encoder": "lstm", "hidden": 256,
                          "layers": 3, "dropout": 0.1},
                "units": {"kind": "phone"},
                "features": {"specaugment": True}}

    def filter_train(self, store, utts, targets, model):
        return drop_unalignable(store, utts, targets, model)

    def setup(self, model: torch.nn.Module, device: torch.device) -> None:
        from asrkit.nn import CTCLoss

        self.crit = CTCLoss(blank=0, reduction="none", zero_infinity=True, impl=model.config["impl"])
        self.inter_weight = float(model.config.get("inter_ctc_weight", 0.0))

    def _ctc_sum(self, logits, out_lens, batch):
        lp = logits.float().log_softmax(-1).transpose(0, 1)  # (T', B, C)
        return self.crit(lp, batch.targets, out_lens, batch.target_lengths).sum()

    def loss(self, net, batch, device, autocast):
        w = self.inter_weight
        with autocast():
            if w > 0:
                logits, out_lens, inter = net(batch.feats, batch.lengths, inter=True)
            else:
                logits, out_lens = net(batch.feats, batch.lengths)  # (B, T', C), (B,)
        loss_sum = self._ctc_sum(logits, out_lens, batch)
        if w > 0:  # intermediate CTC: (1 - w) last layer + w mean over the tapped layers
            aux = sum(self._ctc_sum(x, out_lens, batch) for x in inter) / len(inter)
            loss_sum = (1 - w) * loss_sum + w * aux
        return loss_sum, float(batch.target_lengths.sum()), {}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        from asrkit.data.dataset import collate
        from asrkit.nn.search import ctc_greedy

        loss_sum = norm = 0.0
        hyps: dict[str, list[str]] = {}
        for idx in dev_batches(dev_ds, self.cfg["data"]["max_frames"], dist):
            b = collate([dev_ds[i] for i in idx]).to(device)
            with autocast():
                logits, out_lens = model(b.feats, b.lengths)
            lp = logits.float().log_softmax(-1)  # (B, T', C)
            loss_sum += float(self.crit(lp.transpose(0, 1), b.targets, out_lens, b.target_lengths).sum())
            norm += float(b.target_lengths.sum())
            seqs, _ = ctc_greedy(lp, out_lens, blank=0)
            for u, s in zip(b.utts, seqs):
                hyps[u] = units.tokens(s)
        parts = gather((loss_sum, norm, hyps), dist)
        loss_sum, norm = sum(p[0] for p in parts), sum(p[1] for p in parts)
        hyps = {k: v for p in parts for k, v in p[2].items()}
        return {"loss": loss_sum / norm if norm else float("nan"), **score_tokens(dev_ds.utts, refs, hyps, units)}

