"""asrkit.train.checkpoint: plain-data checkpoints, the weights-only reader,
RNG states, weight mismatches, temp files of interrupted saves."""
from __future__ import annotations

import fractions
import os
import random
import time

import numpy as np
import pytest
import torch

from asrkit.errors import InputError
from asrkit.train.checkpoint import (
    load_checkpoint,
    load_weights,
    read_checkpoint,
    remove_stale_temps,
    rng_state,
    save_checkpoint,
    set_rng_state,
    weights_mismatch,
)


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), float(np.random.rand()), float(np.random.randn()), torch.rand(3)


def _seed_all(n: int) -> None:
    random.seed(n)
    np.random.seed(n)
    torch.manual_seed(n)
    random.gauss(0, 1)  # python keeps a cached second gaussian: that is state too
    np.random.randn()


def _same(a: tuple, b: tuple) -> bool:
    return a[:4] == b[:4] and torch.equal(a[4], b[4])


def test_rng_state_is_plain_data_and_restores_every_generator(tmp_path):
    _seed_all(7)
    save_checkpoint({"model": {}, "rng": [rng_state()]}, tmp_path / "ck.pt")
    want = _draws()
    _seed_all(8)
    # the file loads with the weights-only loader itself, and its state gives the same draws
    ck = torch.load(tmp_path / "ck.pt", weights_only=True)
    set_rng_state(ck["rng"][0])
    assert _same(_draws(), want)
    set_rng_state(read_checkpoint(tmp_path / "ck.pt")["rng"][0])
    assert _same(_draws(), want)


def test_checkpoint_of_the_earlier_format_is_converted(tmp_path):
    """Earlier versions pickled numpy's state tuple (a numpy array): read with only
    numpy's array globals allowed, converted to tensors, same draws."""
    _seed_all(3)
    old = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save({"model": {"w": torch.ones(2)}, "rng": [old], "epoch": 1}, tmp_path / "old.pt")
    want = _draws()
    with pytest.raises(Exception):
        torch.load(tmp_path / "old.pt", weights_only=True)  # really not plain
    _seed_all(4)
    ck = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(ck["rng"][0]["numpy"]["keys"], torch.Tensor)
    set_rng_state(ck["rng"][0])
    assert _same(_draws(), want)
    save_checkpoint(ck, tmp_path / "new.pt")  # and it is plain data now
    torch.load(tmp_path / "new.pt", weights_only=True)


def test_other_pickled_objects_are_refused(tmp_path):
    torch.save({"model": {}, "rng": [{"numpy": np.random.get_state()}], "x": fractions.Fraction(1, 3)},
               tmp_path / "obj.pt")
    with pytest.raises(InputError, match=r"obj\.pt: not a plain-data checkpoint \(it would run code when "
                                         r"loaded\); refusing it"):
        read_checkpoint(tmp_path / "obj.pt")


def test_unreadable_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    save_checkpoint({"model": {"w": torch.zeros(100)}}, tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an asrkit checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_saving_anything_but_plain_data_is_a_bug(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['rng'\]\[0\]: numpy.ndarray is not plain data"):
        save_checkpoint({"model": {}, "rng": [np.zeros(3)]}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_weights_that_do_not_fit_are_counted_and_named_in_one_line(tmp_path):
    model = torch.nn.Sequential(*[torch.nn.Linear(3, 3) for _ in range(4)])
    state = {f"9.{k}": v for k, v in model.state_dict().items()}  # 8 unexpected, 8 missing
    state["0.weight"] = torch.zeros(5, 3)
    msg = weights_mismatch(model, state)
    assert msg.startswith("7 missing key(s): 0.bias, 1.weight, 1.bias, 2.weight, 2.bias, ...; "
                          "8 unexpected key(s): 9.0.weight, ")
    assert "1 of another shape (checkpoint vs model): 0.weight (5, 3) vs (3, 3)" in msg
    with pytest.raises(InputError) as e:
        load_weights(model, state, tmp_path / "best.pt", of="config.yaml")
    line = str(e.value)
    assert "\n" not in line and line.startswith(f"{tmp_path / 'best.pt'}: weights do not fit the model of "
                                                f"config.yaml (7 missing key(s)")
    assert weights_mismatch(model, model.state_dict()) is None


def test_load_model_names_missing_keys(tmp_path):
    """Through the models API: an exp whose config asks for more layers than its weights have."""
    import yaml

    from asrkit.models import build_model, load_model

    cfg = {"type": "ctc", "impl": "native", "input_dim": 6, "num_classes": 5, "subsampling": 2, "encoder": "lstm",
           "hidden": 8, "layers": 1, "dropout": 0.0, "conv_channels": 4}
    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    save_checkpoint({"model": build_model(cfg).state_dict()}, exp / "checkpoints" / "best.pt")
    (exp / "config.yaml").write_text(yaml.safe_dump({"task": "ctc", "model": {**cfg, "layers": 3}}))
    with pytest.raises(InputError) as e:
        load_model(exp)
    msg = str(e.value)
    assert "\n" not in msg and "weights do not fit the model of" in msg
    n_missing = int(msg.split("(", 1)[1].split(" missing key(s)")[0])
    assert n_missing > 5 and msg.count("weight_ih_l") + msg.count("weight_hh_l") + msg.count("bias_") <= 5


def test_stale_temp_files_of_atomic_writes_are_removed(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    old = [ck / ".last.pt.a1b2c3d4.tmp", tmp_path / ".metrics.jsonl.zz_9yx8w.tmp"]
    fresh = ck / ".epoch-2.pt.q1w2e3r4.tmp"  # a write of a live process (newer than the start)
    keep = [ck / "last.pt", ck / ".last.pt.tmp", ck / "notes.tmp", tmp_path / ".units.tmp"]
    for p in old + [fresh] + keep[:3]:
        p.write_bytes(b"x")
    keep[3].mkdir()
    start = time.time()
    for p in old:
        os.utime(p, (start - 60, start - 60))
    os.utime(fresh, (start + 60, start + 60))
    removed = remove_stale_temps([tmp_path, ck, tmp_path / "missing"], before=start)
    assert sorted(removed) == sorted(old)
    assert not any(p.exists() for p in old) and fresh.exists() and all(p.exists() for p in keep)
