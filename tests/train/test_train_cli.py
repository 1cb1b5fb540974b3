"""``asrkit train frame|ctc`` and ``asrkit average`` from the command line."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from train_helpers import small_overrides

from asrkit.cli.main import main


def test_train_frame_cli_and_average(stores, tmp_path, capsys):
    exp = tmp_path / "exp"
    args = ["train", "frame", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
            "--device", "cpu", "--seed", "3", *small_overrides("frame")]
    assert main(["-q", *args]) == 0
    assert (exp / "checkpoints" / "best.pt").is_file()
    assert "seed: 3" in (exp / "config.yaml").read_text()
    assert capsys.readouterr().out == ""  # nothing on stdout
    assert main(["-q", "average", str(exp), "--last", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "checkpoints" / "avg-last-2.pt")
    # more than there are: the two there, with a warning (stdout still just the path)
    assert main(["-q", "average", str(exp), "--last", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(exp / "checkpoints" / "avg-last-3.pt")
    assert "only 2 epoch checkpoint(s)" in " ".join(err.split())
    # a second run into the same exp without --resume is refused
    assert main(["-q", *args]) == 2
    assert "--resume" in capsys.readouterr().err
    # an exp dir that another command made (a data dir given as --out by mistake) is left alone
    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text("u1 a b\n")
    args_data = [a if a != str(exp) else str(data) for a in args]
    assert main(["-q", *args_data]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in data.iterdir()) == ["text"]
    # --overwrite replaces it
    assert main(["-q", *args_data, "--overwrite"]) == 0
    assert (data / "checkpoints" / "best.pt").is_file() and not (data / "text").exists()


def test_bad_key_fails_before_any_work(stores, tmp_path, capsys):
    exp = tmp_path / "exp"
    code = main(["train", "ctc", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
                 "optim.lrr=3"])
    err = capsys.readouterr().err
    assert code == 2 and "optim.lrr" in err and "Traceback" not in err
    assert not exp.exists()
    code = main(["train", "ctc", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp),
                 "model.layers=0"])
    assert code == 2 and "model.layers" in capsys.readouterr().err and not exp.exists()


def test_user_errors_are_one_line(tmp_path, stores, capsys):
    code = main(["train", "frame", "--train", str(tmp_path / "nope"), "--dev", str(stores["dev"]),
                 "--out", str(tmp_path / "exp")])
    err = capsys.readouterr().err
    assert code == 1 and "not a feature store" in err and "Traceback" not in err
    code = main(["average", str(tmp_path / "exp"), "--last", "2"])
    assert code == 1 and "no epoch-N.pt" in capsys.readouterr().err


_KILLER = """
import os, signal, sys
from asrkit.train import load_config, train
k = int(sys.argv[4])
def hook(step, epoch, position):
    if step == k:
        os.kill(os.getpid(), signal.SIGKILL)   # no cleanup, no atexit: a real kill
train(load_config("ctc", None, sys.argv[5:]), sys.argv[1], sys.argv[2], sys.argv[3], hooks={"after_step": hook})
"""


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(stores, tmp_path):
    """SIGKILL mid-epoch (in the middle of epoch 2), then ``asrkit train ... --resume``: same final weights."""
    over = small_overrides("ctc") + ["train.epochs=3", "train.save_every_steps=2", "data.max_frames=120"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    full, killed = tmp_path / "full", tmp_path / "killed"

    def cli(exp, *extra):
        return [sys.executable, "-m", "asrkit", "-q", "train", "ctc", "--train", str(stores["train"]), "--dev",
                str(stores["dev"]), "--out", str(exp), "--device", "cpu", *over, *extra]

    subprocess.run(cli(full), check=True, env=env)
    per_epoch = torch.load(full / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]
    k = per_epoch + 3
    p = subprocess.run([sys.executable, "-c", _KILLER, str(stores["train"]), str(stores["dev"]), str(killed),
                        str(k), *over], env=env, check=False)
    assert p.returncode == -signal.SIGKILL
    ck = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1 and 0 < ck["position"] < per_epoch and ck["step"] < k
    subprocess.run(cli(killed, "--resume"), check=True, env=env)
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_resume_needs_only_the_paths(stores, tmp_path, capsys):
    exp = tmp_path / "exp"
    paths = ["train", "frame", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp)]
    assert main(["-q", *paths, "--seed", "5", *small_overrides("frame"), "train.epochs=1"]) == 0
    assert main(["-q", *paths, "--resume", "train.epochs=2"]) == 0
    ck = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert ck["epoch"] == 2 and ck["config"]["train"]["seed"] == 5
    assert main(["-q", *paths, "--resume", "--seed", "6"]) == 2
    assert "train.seed=6 differs from 5" in capsys.readouterr().err


def test_resume_a_run_saved_before_a_key_existed(stores, tmp_path, capsys):
    """A run whose config (config.yaml and last.pt) predates a config key (here the features.vtlp
    and time_stretch keys) resumes: the key's default is what the older code did."""
    import yaml

    exp = tmp_path / "exp"
    paths = ["train", "ctc", "--train", str(stores["train"]), "--dev", str(stores["dev"]), "--out", str(exp)]
    assert main(["-q", *paths, *small_overrides("ctc"), "train.epochs=1"]) == 0
    new_keys = ("vtlp", "vtlp_warp", "vtlp_low", "vtlp_high", "time_stretch", "stretch_rate")
    saved = yaml.safe_load((exp / "config.yaml").read_text())
    for k in new_keys:
        del saved["features"][k]
    (exp / "config.yaml").write_text(yaml.safe_dump(saved))
    last = exp / "checkpoints" / "last.pt"
    ck = torch.load(last, weights_only=True)
    for k in new_keys:
        del ck["config"]["features"][k]
    torch.save(ck, last)
    assert main(["-q", *paths, "--resume", "train.epochs=2"]) == 0, capsys.readouterr().err
    assert torch.load(last, weights_only=True)["epoch"] == 2
    # a value other than the default is a change of config, refused as before
    assert main(["-q", *paths, "--resume", "train.epochs=3", "features.time_stretch=true"]) == 2
    assert "features.time_stretch=True differs from False" in capsys.readouterr().err
