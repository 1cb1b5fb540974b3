"""Fake exp dirs and feature stores for the decode tests: a tiny CTC model
(or frame classifier) built with asrkit.models.build_model, random weights
scaled up (so greedy paths vary from frame to frame),
saved the way `asrkit train` saves them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asrkit.data.feature_store import ShardWriter, merge_shards
from asrkit.data.table import write_table

DIM = 20
PHONE_WORDS = {"a": ["ah"], "cat": ["k", "ae", "t"], "sat": ["s", "ae", "t"], "on": ["aa", "n"],
               "mat": ["m", "ae", "t"]}


def make_store(path: Path, n: int = 7, dim: int = DIM, seed: int = 0, min_frames: int = 30,
               max_frames: int = 90) -> list[str]:
    """A feature store of ``n`` utterances of random lengths (two speakers),
    with a ``text``; returns the utt-ids (sorted)."""
    rng = np.random.default_rng(seed)
    utts = sorted(f"spk{i % 2}-utt{i:03d}" for i in range(n))
    with ShardWriter(path, 0) as w:
        for u in utts:
            t = int(rng.integers(min_frames, max_frames))
            w.add(u, u.split("-")[0], (rng.standard_normal((t, dim)) * 2 + 1).astype(np.float32))
    merge_shards(path, 1)
    words = list(PHONE_WORDS)
    write_table(path / "text", {u: " ".join(rng.choice(words, 3)) for u in utts})
    write_table(path / "utt2spk", {u: u.split("-")[0] for u in utts})
    return utts


def spec_emissions(units, frames: list[dict[str, float]], utt: str = "u", subsampling: int = 2):
    """Hand-made ``(T', C)`` log-probabilities as a ModelOutput: each frame
    gives some units a probability, the rest of the mass goes to the blank
    (a tiny floor for every class)."""
    from asrkit.decode import ModelOutput

    rows = []
    for spec in frames:
        p = torch.full((units.num_classes,), 1e-4)
        for u, v in spec.items():
            p[units.units.index(u)] = v
        p[0] += max(0.0, 1.0 - float(p.sum()))
        rows.append((p / p.sum()).log())
    return ModelOutput(utt, torch.stack(rows), subsampling * len(rows))


def _sharpen(model: torch.nn.Module, scale: float = 3.0) -> None:
    """Scale every weight matrix so that hidden states follow the (random)
    input frame by frame: a random model then emits many different units."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(scale)
        if getattr(model, "output", None) is not None and model.output.bias is not None:
            model.output.bias.zero_()  # drop the recurrent CTC models' blank-leaning start


def _train_steps(model: torch.nn.Module, tok, steps: int) -> None:
    """A few small optimizer steps in the model's own impl (so a checkpoint is
    literally trained with it) on random features and targets."""
    from asrkit.nn import CTCLoss

    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 60, DIM, generator=g)
    lengths = torch.tensor([60, 45, 30])
    targets = torch.randint(1, tok.vocab_size, (3, 4), generator=g)
    crit = CTCLoss(blank=0, zero_infinity=True, impl=model.config["impl"])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        logits, out_len = model(x, lengths)  # (B, T', C)
        loss = crit(logits.log_softmax(-1).transpose(0, 1), targets, out_len, torch.full((3,), 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def make_ctc_exp(path: Path, kind: str = "phone", impl: str = "scratch", encoder: str = "lstm",
                 subsampling: int = 2, seed: int = 0, cmvn: str | None = "global", text: Path | None = None,
                 steps: int = 2) -> Path:
    """An exp dir like `asrkit train ctc` writes: config.yaml, units/, checkpoints/best.pt and last.pt;
    the model takes ``steps`` SGD steps in its own ``impl`` first."""
    from asrkit.data.tokenizer import Tokenizer, train_tokenizer
    from asrkit.models import build_model
    from asrkit.train.config import defaults, save_config

    path.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = path / "train_text"
        text.write_text("".join(f"u{i} {w} {' '.join(PHONE_WORDS)}\n" for i, w in enumerate(PHONE_WORDS)))
    if kind == "phone":
        lexicon = path / "lexicon.txt"
        lexicon.write_text("".join(f"{w} {' '.join(p)}\n" for w, p in PHONE_WORDS.items()))
        train_tokenizer("phone", text, path / "units", lexicons=[lexicon], cmudict=False)
    else:
        train_tokenizer(kind, text, path / "units", vocab_size=12 if kind == "bpe" else None)
    tok = Tokenizer.load(path / "units")
    cfg = defaults("ctc")
    cfg["units"]["kind"] = kind
    cfg["data"]["cmvn"] = cmvn
    cfg["model"] = {"type": "ctc", "impl": impl, "input_dim": DIM, "num_classes": tok.vocab_size,
                    "subsampling": subsampling, "encoder": encoder, "hidden": 16, "layers": 2, "dropout": 0.0,
                    "conv_channels": 4, "heads": 2, "ff_mult": 2, "conv_kernel": 5}
    torch.manual_seed(seed)
    model = build_model(cfg["model"])
    _sharpen(model)
    _train_steps(model, tok, steps)
    cfg["model"] = dict(model.config)
    save_config(cfg, path / "config.yaml")
    (path / "checkpoints").mkdir(exist_ok=True)
    for name in ("best", "last"):
        torch.save({"model": model.state_dict(), "epoch": 1}, path / "checkpoints" / f"{name}.pt")
    return path


def make_frame_exp(path: Path, labels: list[str], impl: str = "scratch", seed: int = 0) -> Path:
    """A frame-classifier exp dir: units/units.txt of ``label id`` lines,
    ``<blank>`` first as the trainer writes it."""
    from asrkit.models import build_model
    from asrkit.train.config import defaults, save_config

    path.mkdir(parents=True, exist_ok=True)
    (path / "units").mkdir(exist_ok=True)
    units = ["<blank>", *labels]
    (path / "units" / "units.txt").write_text("".join(f"{lab} {i}\n" for i, lab in enumerate(units)))
    cfg = defaults("frame")
    cfg["model"] = {"type": "frame_mlp", "impl": impl, "input_dim": DIM, "num_classes": len(units),
                    "context": 2, "hidden": [16], "dropout": 0.0}
    torch.manual_seed(seed)
    model = build_model(cfg["model"])
    _sharpen(model)
    cfg["model"] = dict(model.config)
    save_config(cfg, path / "config.yaml")
    (path / "checkpoints").mkdir(exist_ok=True)
    torch.save({"model": model.state_dict()}, path / "checkpoints" / "best.pt")
    return path


