"""Training with features.vtlp / features.time_stretch: a run, its determinism, the refusals."""
from __future__ import annotations

import pytest
import torch
import yaml
from train_helpers import make_store, small_overrides

from asrkit.errors import ConfigError
from asrkit.train import load_config, train


@pytest.fixture(scope="module")
def fbank_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("perturb_stores")
    out = {"train": make_store(root / "train", n=16, seed=1), "dev": make_store(root / "dev", n=6, seed=2)}
    for p in out.values():
        (p / "conf.yaml").write_text(yaml.safe_dump({"type": "fbank", "sample_frequency": 16000,
                                                     "num_mel_bins": 16, "deltas": 0, "dim": 16}))
    return out


def test_ctc_trains_with_vtlp_and_time_stretch(fbank_stores, tmp_path):
    ov = small_overrides("ctc") + ["train.epochs=3", "features.specaugment=false", "features.vtlp=true",
                                   "features.vtlp_warp=[0.8,1.2]", "features.time_stretch=true",
                                   "features.stretch_rate=[0.9,1.1]", "train.threads=1"]
    runs = []
    for name in ("a", "b"):
        r = train(load_config("ctc", None, ov), fbank_stores["train"], fbank_stores["dev"], tmp_path / name)
        runs.append(torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"])
        assert r.epochs == 3
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])          # the same seed: the same run
    plain = train(load_config("ctc", None, small_overrides("ctc") + ["train.epochs=3", "features.specaugment=false",
                                                                    "train.threads=1"]),
                  fbank_stores["train"], fbank_stores["dev"], tmp_path / "plain")
    assert plain.epochs == 3
    w = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(w[k], runs[0][k]) for k in w)                   # the perturbation did something
    saved = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["features"]
    assert saved["vtlp"] is True and saved["vtlp_warp"] == [0.8, 1.2] and saved["time_stretch"] is True


def test_refusals_before_training(fbank_stores, tmp_path):
    plain = make_store(tmp_path / "noconf", n=4, seed=3)                       # no conf.yaml: not known to be fbank
    with pytest.raises(ConfigError, match="features.vtlp"):
        train(load_config("ctc", None, small_overrides("ctc") + ["features.vtlp=true"]), plain,
              fbank_stores["dev"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="time_stretch"):
        train(load_config("frame", None, small_overrides("frame") + ["features.time_stretch=true"]),
              fbank_stores["train"], fbank_stores["dev"], tmp_path / "y")
    assert not (tmp_path / "y").exists()
    with pytest.raises(ConfigError, match="stretch_rate"):
        train(load_config("ctc", None, small_overrides("ctc") + ["features.time_stretch=true",
                                                                 "features.stretch_rate=[1.2,0.8]"]),
              fbank_stores["train"], fbank_stores["dev"], tmp_path / "z")
