"""``asrkit train gan``: a DCGAN (:class:`asrkit.models.DCGAN`) on an image folder.

Data: :class:`~asrkit.tasks.images.ImageTask` (``--train DIR/<class>/*.png``;
the classes are not used: the generator is unconditional, so one class
folder is enough). Each update has two phases (:meth:`GanTask.phases`): the
discriminator's step on the batch's real images and as many generated ones
(the generator held fixed), then the generator's step on fresh noise against
the updated discriminator; each has its own optimizer (AdamW, betas and lr of
the ``optim`` section: the DCGAN paper's Adam(2e-4, (0.5, 0.999)) by default).
Noise comes from torch's global generator, whose state every checkpoint
holds, so a resumed run draws what an unbroken one would.

Losses (``model.loss``), sums over the images of the batch, divided by them:

* ``bce`` (non-saturating): D: ``softplus(-D(x)) + softplus(D(G(z)))``; G: ``softplus(-D(G(z)))``
* ``hinge``: D: ``relu(1 - D(x)) + relu(1 + D(G(z)))``; G: ``-D(G(z))``

metrics.jsonl logs ``loss_d``, ``loss_g`` and the discriminator's mean
outputs ``d_real`` = sigmoid D(x) and ``d_fake`` = sigmoid D(G(z)).

Dev metrics (cheap, every epoch): ``fd_pix``, the Fréchet distance
(:mod:`asrkit.score.frechet`) between the first ``data.eval_images`` dev
images and as many samples of a fixed noise, both average-pooled to 8x8
pixels (``C * 64`` numbers per image): it falls as the samples' layout and
brightness statistics approach the real ones (a coarse stand-in for the
classifier-feature distance of ``asrkit frechet``); ``loss``, the
discriminator's loss on those real and fake images; ``d_real`` and
``d_fake`` (sigmoid outputs on them). ``train.metric=auto`` picks ``fd_pix``
(lower is better) for best.pt. After every epoch a grid of 64 samples of a
fixed noise is written to ``EXP/samples/epoch-NNN.png``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from asrkit.errors import ConfigError
from asrkit.tasks.base import gather, register_task
from asrkit.tasks.images import ImageTask, eval_batch, image_batches

if TYPE_CHECKING:
    import torch

__all__ = ["GanTask", "fixed_noise", "pixel_features"]

#: images of the per-epoch sample grid (8 x 8)
GRID = 64


def fixed_noise(n: int, nz: int, seed: int, what: str = "grid") -> torch.Tensor:
    """``(n, nz)`` standard normal noise from its own generator seeded by ``(seed, what)``
    (never the global one, so drawing it changes no training randomness)."""
    import torch

    from asrkit.features.specaugment import seed_of

    gen = torch.Generator().manual_seed(seed_of((seed, "gan", what)))
    return torch.randn(n, nz, generator=gen)


def pixel_features(images: torch.Tensor, size: int = 8) -> torch.Tensor:
    """``(N, C, H, W)`` images -> ``(N, C * size * size)`` average-pooled pixels (float64)."""
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(images.double(), size).flatten(1)


@register_task
class GanTask(ImageTask):
    name = "gan"
    help = "Train a DCGAN (generator + discriminator) on an image folder."
    train_needs = "one or more sub-folders of images (the classes are not used)"
    conf_example = "conf/gan_dcgan.yaml"
    model_types = ("dcgan",)
    metrics = {"fd_pix": "min"}
    percent_metrics = ()

    @classmethod
    def defaults(cls) -> dict:
        d = super().defaults()
        d["model"] = {"type": "dcgan"}
        d["optim"] = {"lr": 2e-4, "betas": [0.5, 0.999], "weight_decay": 0.0, "scheduler": "constant",
                      "warmup_steps": 0, "grad_clip": None}
        return d

    @classmethod
    def config_keys(cls) -> dict:
        keys = super().config_keys()
        keys["data"] = {**keys["data"], "eval_images": (1000, (int,), None)}  # dev images (and samples) of fd_pix
        return keys

    def validate(self) -> None:
        super().validate()
        if self.cfg["data"]["eval_images"] < 2:
            raise ConfigError(f"config key 'data.eval_images': must be >= 2 (got {self.cfg['data']['eval_images']})")

    # ------------------------------------------------------------------ optimization
    def phases(self) -> tuple[str, ...]:
        return ("d", "g")

    def optimizers(self, model) -> dict:
        from asrkit.nn.optim import AdamW

        o = self.cfg["optim"]

        def adam(params):
            return AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])

        return {"d": adam(model.discriminator.parameters()), "g": adam(model.generator.parameters())}

    def setup(self, model, device) -> None:
        self.nz = model.nz
        self.kind = model.config["loss"]
        self.seed = int(self.cfg["train"]["seed"])

    def stat_names(self) -> tuple[str, ...]:
        return ("d_real", "d_fake")

    def _d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss summed over the images."""
        import torch.nn.functional as F

        if self.kind == "hinge":
            return F.relu(1 - real_logits).sum() + F.relu(1 + fake_logits).sum()
        return F.softplus(-real_logits).sum() + F.softplus(fake_logits).sum()

    def _g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        if self.kind == "hinge":
            return -fake_logits.sum()
        return F.softplus(-fake_logits).sum()

    def loss(self, net, batch, device, autocast, phase=None):
        import torch

        n = len(batch)
        z = torch.randn(n, self.nz).to(device)                  # the global CPU generator (saved for resume)
        with autocast():
            if phase == "d":
                real_logits, fake_logits = net(z, batch.images)
            else:
                fake_logits = net(z, mode="g")
        if phase == "d":
            real_logits, fake_logits = real_logits.float(), fake_logits.float()
            stats = {"d_real": float(torch.sigmoid(real_logits.detach()).sum()),
                     "d_fake": float(torch.sigmoid(fake_logits.detach()).sum())}
            return self._d_loss(real_logits, fake_logits), float(n), stats
        return self._g_loss(fake_logits.float()), float(n), {}

    # ------------------------------------------------------------------ dev
    def evaluate(self, model, dev_ds, refs, units, *, device, autocast, dist) -> dict[str, float]:
        import torch

        from asrkit.score.frechet import fit_gaussian, frechet_distance

        num = min(len(dev_ds), self.cfg["data"]["eval_images"])
        noise = fixed_noise(num, model.nz, self.seed, "eval")
        bs = self.cfg["data"]["batch_size"]
        parts = []
        for idx in image_batches(dev_ds, bs, dist):
            idx = [i for i in idx if i < num]
            if not idx:
                continue
            real = eval_batch(dev_ds, idx).images.to(device)
            with autocast():
                fake = model.generate(noise[idx].to(device))
                rl, fl = model.discriminate(real).float(), model.discriminate(fake).float()
            parts.append((float(self._d_loss(rl, fl)), float(torch.sigmoid(rl).sum()), float(torch.sigmoid(fl).sum()),
                          pixel_features(real.float()).cpu(), pixel_features(fake.float()).cpu()))
        parts = [p for rank in gather(parts, dist) for p in rank]
        real_f = torch.cat([p[3] for p in parts])
        fake_f = torch.cat([p[4] for p in parts])
        return {"loss": sum(p[0] for p in parts) / num, "d_real": sum(p[1] for p in parts) / num,
                "d_fake": sum(p[2] for p in parts) / num,
                "fd_pix": frechet_distance(fit_gaussian(real_f), fit_gaussian(fake_f))}

    def end_epoch(self, epoch, model, dev_ds, refs, units, exp: Path, device, *, dist) -> dict[str, float]:
        if dist.main:
            from asrkit.data.images import save_grid

            images = model.generate(fixed_noise(GRID, model.nz, self.seed).to(device)).float().cpu()
            (Path(exp) / "samples").mkdir(parents=True, exist_ok=True)
            save_grid(images, Path(exp) / "samples" / f"epoch-{epoch + 1:03d}.png", nrow=8)
        return {}
