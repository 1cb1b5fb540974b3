"""What ``asrkit train las`` and ``asrkit train transformer`` share: an attention
encoder-decoder (:class:`asrkit.models.seq2seq.Seq2SeqModel`) learning token
sequences (phone, char or bpe units, the same units folder as CTC).

Loss, per batch (ESPnet's hybrid objective, Watanabe et al. 2017)::

    loss = (1 - model.ctc_weight) * attention + model.ctc_weight * CTC

``attention`` is the label-smoothed (``model.label_smoothing``) cross-entropy
of the decoder at every target and the final ``<eos>`` (teacher forcing, LAS:
at the epoch's teacher-forcing rate), ``CTC`` the CTC loss of the encoder's CTC
head (none when ``ctc_weight`` is 0). Both are sums over the global batch
divided by its target tokens + one ``<eos>`` per utterance. Logged per update:
``att_loss``, ``ctc_loss`` (per token) and ``acc`` (teacher-forced token
accuracy, %).

Dev, after each epoch: the same loss and accuracy, greedy decoding of every
utterance (at most 1.5 x the batch's longest reference + 10 tokens, so an
early model that never says ``<eos>`` costs little) scored as PER or WER/CER,
and ``diagonality``: the mean over the dev utterances of the share of their
teacher-forced attention inside a monotonic band (:func:`asrkit.plot.diagonality`;
near 1 once attention "clicks"). The teacher-forced attention map of one fixed
dev utterance (the first by id) is drawn into ``EXP/plots/attention-epoch-N.png``.

``train.metric=auto`` picks the dev token accuracy (``acc``, higher is better),
as ESPnet picks its attention models by validation accuracy: the greedy WER of
an early decoder rewards saying nothing (an empty output scores 100%, a
looping one several hundred), so it chose the first epoch as ``best.pt``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from asrkit.tasks.base import dev_batches, gather
from asrkit.tasks.tokens import TokenTask, score_tokens

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["Seq2SeqTask"]

#: dev greedy decoding stops after this many tokens past 1.5 x the longest reference of the batch
DEV_EXTRA_TOKENS = 10


class Seq2SeqTask(TokenTask):
    """The shared base of the attention tasks; subclasses name the model type and
    may set :attr:`tf_rate` per epoch (:meth:`start_epoch`)."""

    metrics = {"per": "min", "wer": "min", "cer": "min", "acc": "max", "diagonality": "max"}
    percent_metrics = ("acc", "per", "wer", "cer")

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        self.tf_rate = 1.0

    def auto_metric(self) -> str:
        return "acc"

    def model_settings(self) -> dict:
        """The ``model`` section with its defaults filled in (the dims may still be placeholders)."""
        m = dict(self.cfg["model"])
        m.setdefault("input_dim", 1)
        m.setdefault("num_classes", 2)
        return self.resolve_model_config(m)

    def sampler_weights(self, utts: list[str], targets: dict[str, np.ndarray]) -> list[float]:
        """Target tokens + the ``<eos>``: the loss is a mean over the decoder's outputs."""
        return [float(len(targets[u]) + 1) for u in utts]

    def stat_names(self) -> tuple[str, ...]:
        """``att_loss`` and ``acc``, and ``ctc_loss`` when the model has a CTC head (``ctc_weight > 0``)."""
        has_ctc = self.model_settings()["ctc_weight"] > 0
        return ("att_loss", "ctc_loss", "acc") if has_ctc else ("att_loss", "acc")

    def setup(self, model: torch.nn.Module, device: torch.device) -> None:
        from asrkit.nn import CrossEntropyLoss, CTCLoss

        m = model.config
        self.ctc_weight = float(m["ctc_weight"]) if getattr(model, "has_ctc", False) else 0.0
        self.ce = CrossEntropyLoss(reduction="sum", ignore_index=-100, label_smoothing=float(m["label_smoothing"]),
                                   impl=m["impl"])
        self.ctc = CTCLoss(blank=0, reduction="none", zero_infinity=True, impl=m["impl"])

    def _losses(self, out, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
        """(loss_sum, att_sum, ctc_sum, correct, tokens) of a forward's output."""
        import torch

        logits = out.logits.float()  # (B, U+1, C)
        tgt = out.targets  # (B, U+1), -100 past each utterance's <eos>
        valid = tgt != -100
        att_sum = self.ce(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        ctc_sum = torch.zeros((), device=logits.device)
        if self.ctc_weight > 0:
            lp = out.ctc_logits.float().log_softmax(-1).transpose(0, 1)  # (S, B, C)
            ctc_sum = self.ctc(lp, batch.targets, out.enc_lengths, batch.target_lengths).sum()
        loss = (1.0 - self.ctc_weight) * att_sum + self.ctc_weight * ctc_sum
        correct = float(((logits.argmax(-1) == tgt) & valid).sum())
        return loss, att_sum, ctc_sum, correct, float(valid.sum())

    def loss(self, net, batch, device, autocast):
        with autocast():
            out = net(batch.feats, batch.lengths, batch.targets, batch.target_lengths, tf_rate=self.tf_rate)
        loss, att_sum, ctc_sum, correct, tokens = self._losses(out, batch)
        stats = {"att_loss": float(att_sum.detach()), "ctc_loss": float(ctc_sum.detach()), "acc": 100.0 * correct}
        return loss, tokens, {k: stats[k] for k in self.stat_names()}

    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist):
        from asrkit.data.dataset import collate
        from asrkit.decode.attention import attention_greedy
        from asrkit.plot import diagonality

        sums = {"loss": 0.0, "tokens": 0.0, "correct": 0.0, "diag": 0.0, "utts": 0.0}
        hyps: dict[str, list[str]] = {}
        for idx in dev_batches(dev_ds, self.cfg["data"]["max_frames"], dist):
            b = collate([dev_ds[i] for i in idx]).to(device)
            with autocast():
                out = model(b.feats, b.lengths, b.targets, b.target_lengths)
            loss, _, _, correct, tokens = self._losses(out, b)
            sums["loss"] += float(loss)
            sums["tokens"] += tokens
            sums["correct"] += correct
            att = out.attention.float().cpu()  # (B, U+1, S)
            for k, (u_len, s_len) in enumerate(zip(b.target_lengths.tolist(), out.enc_lengths.tolist())):
                sums["diag"] += diagonality(att[k, :u_len + 1, :s_len].numpy())
                sums["utts"] += 1
            with autocast():
                enc = model.encode(b.feats, b.lengths)
            cap = int(1.5 * int(b.target_lengths.max())) + DEV_EXTRA_TOKENS
            for u, h in zip(b.utts, attention_greedy(model, enc, max_len=cap)):
                hyps[u] = units.tokens(h.ids)
        parts = gather((sums, hyps), dist)
        total = {k: sum(p[0][k] for p in parts) for k in sums}
        hyps = {k: v for p in parts for k, v in p[1].items()}
        n = total["tokens"]
        return {"loss": total["loss"] / n if n else float("nan"),
                "acc": 100.0 * total["correct"] / n if n else 0.0,
                "diagonality": total["diag"] / total["utts"] if total["utts"] else 0.0,
                **score_tokens(dev_ds.utts, refs, hyps, units)}

    def end_epoch(self, epoch, model, dev_ds, refs, units, exp, device, *, dist):
        """The teacher-forced attention of the first dev utterance, drawn into
        ``EXP/plots/attention-epoch-N.png`` (rank 0)."""
        if not dist.main or len(dev_ds) == 0:
            return {}
        from asrkit.data.dataset import collate
        from asrkit.plot import save_epoch_attention

        first = min(range(len(dev_ds)), key=lambda i: dev_ds.utts[i])
        b = collate([dev_ds[first]]).to(device)
        out = model(b.feats, b.lengths, b.targets, b.target_lengths)
        u_len, s_len = int(b.target_lengths[0]), int(out.enc_lengths[0])
        labels = [*units.symbols(b.targets.tolist()), "<eos>"]
        save_epoch_attention(out.attention[0, :u_len + 1, :s_len].float().cpu().numpy(), exp / "plots", epoch + 1,
                             y_labels=labels, utt=b.utts[0])
        return {}
