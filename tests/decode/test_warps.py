"""Test-time VTLP (`asrkit decode --warps`, iter_outputs(warps=...)): the mean of the model's
log-probabilities over mel-warped copies of the features, checked against a by-hand computation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.decode import iter_outputs, load_exp
from asrkit.features.perturb import MelGeometry, Perturb, vtlp

from decode_util import DIM, make_store

WARPS = (0.9, 1.0, 1.1)


@pytest.fixture(scope="module")
def fbank_store(tmp_path_factory) -> Path:
    """Random features with an fbank conf.yaml of DIM mel bins (what the warp needs to know)."""
    p = tmp_path_factory.mktemp("feats") / "fbank"
    make_store(p, n=6, seed=5)
    (p / "conf.yaml").write_text(yaml.safe_dump({"type": "fbank", "num_mel_bins": DIM,
                                                 "sample_frequency": 16000.0}))
    return p


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_vtlp_is_perturbs_warp_and_one_is_the_identity():
    geom = MelGeometry.from_conf({"type": "fbank", "num_mel_bins": DIM, "sample_frequency": 16000.0})
    x = torch.randn(12, DIM)
    assert torch.equal(vtlp(x, 1.0, geom), x) and vtlp(x, 1.0, geom) is not x
    for a in (0.85, 1.12):
        y = vtlp(x, a, geom)
        assert torch.equal(Perturb(geom, warp=(a, a))(x, seed=3), y)
        assert not torch.allclose(y, x)
        # the warp resamples each frame along the mel axis: values stay within the frame's range
        assert (y.max(1).values <= x.max(1).values + 1e-6).all() and (y.min(1).values >= x.min(1).values - 1e-6).all()
    with pytest.raises(ValueError, match="want"):
        vtlp(torch.randn(3, DIM + 1), 1.1, geom)


def test_warped_log_probs_are_the_mean_over_warped_copies(ctc_exp, fbank_store):
    loaded = load_exp(ctc_exp, device="cpu", task="ctc")
    fs = FeatureStore(fbank_store)
    geom = MelGeometry.from_conf(fs.conf)
    got = {o.utt: o for o in iter_outputs(loaded.model, fs, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars,
                                          batch_size=4, input_dim=loaded.input_dim, warps=WARPS)}
    plain = {o.utt: o for o in iter_outputs(loaded.model, fs, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars,
                                            batch_size=4, input_dim=loaded.input_dim)}
    assert sorted(got) == fs.keys()
    for u in fs.keys():
        raw = torch.from_numpy(np.array(fs[u], dtype=np.float32))
        runs = []
        for a in WARPS:
            x = torch.from_numpy(fs.normalize(u, vtlp(raw, a, geom).numpy(), loaded.cmvn, loaded.norm_vars))
            with torch.no_grad():
                logits, _ = loaded.model(x[None], torch.tensor([x.shape[0]]))
            runs.append(torch.log_softmax(logits[0].float(), -1))
        want = torch.log_softmax(torch.stack(runs).mean(0), -1)
        assert got[u].frames == plain[u].frames == raw.shape[0]
        torch.testing.assert_close(got[u].log_probs, want, atol=1e-4, rtol=1e-4)
        assert torch.allclose(got[u].log_probs.exp().sum(-1), torch.ones(want.shape[0]), atol=1e-5)
        assert not torch.allclose(got[u].log_probs, plain[u].log_probs, atol=1e-3)
    # one warp of 1: the plain run
    one = {o.utt: o for o in iter_outputs(loaded.model, fs, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars,
                                          batch_size=4, input_dim=loaded.input_dim, warps=(1.0,))}
    for u in fs.keys():
        torch.testing.assert_close(one[u].log_probs, plain[u].log_probs, atol=1e-5, rtol=1e-5)


def test_decode_warps_greedy_and_beam(capsys, ctc_exp, fbank_store):
    from asrkit.decode.greedy import greedy_hypotheses

    loaded = load_exp(ctc_exp, device="cpu", task="ctc")
    fs = FeatureStore(fbank_store)
    outs = iter_outputs(loaded.model, fs, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars, batch_size=4,
                        input_dim=loaded.input_dim, warps=WARPS)
    want = [f"{h.utt} {' '.join(h.tokens)}".strip() for h in greedy_hypotheses(outs, loaded.units)]
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(fbank_store), "--device", "cpu",
                          "--warps", "0.9,1,1.1")
    assert code == 0, err
    assert [line.strip() for line in out.splitlines()] == want
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(fbank_store), "--device", "cpu",
                          "--warps", "0.9,1,1.1", "--beam", "4")
    assert code == 0 and len(out.splitlines()) == len(want), err


@pytest.mark.parametrize("value,message", [
    ("0.9,x", "--warps: want comma-separated warp factors"),
    ("0.9,,1", "--warps: want comma-separated warp factors"),
    ("0", "--warps: each warp factor must be in [0.5, 2] (got 0)"),
    ("1,nan", "--warps: each warp factor must be in [0.5, 2] (got nan)"),
    ("1,3", "--warps: each warp factor must be in [0.5, 2] (got 3)"),
    ("1,1.0", "--warps: a warp factor is given twice"),
])
def test_bad_warps_are_one_line(capsys, ctc_exp, fbank_store, value, message):
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(fbank_store), "--device", "cpu", "--warps", value)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1


def test_warps_need_fbank_features_and_the_model(capsys, ctc_exp, store, fbank_store, tmp_path):
    # a store without an fbank conf.yaml: nothing to warp along
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(store), "--device", "cpu", "--warps", "0.9,1")
    assert code == 2 and out == ""
    assert "--warps: test-time VTLP warps log-mel filterbank features" in err and len(err.strip().splitlines()) == 1
    # saved emissions: the model does not run
    em = tmp_path / "em"
    code, _, err = _run(capsys, "decode", str(ctc_exp), str(fbank_store), "--device", "cpu", "--save-emissions", str(em))
    assert code == 0, err
    code, out, err = _run(capsys, "decode", str(ctc_exp), str(em), "--warps", "0.9,1")
    assert code == 2 and out == ""
    assert "--warps warps the features before the model" in err and len(err.strip().splitlines()) == 1


def test_long_utterances_are_cut_where_the_plain_features_pause(ctc_exp, tmp_path, monkeypatch):
    """Long-form pieces (max_frames): every warped pass looks for pauses on the unwarped features,
    so the passes cut alike, line up frame by frame and have the plain long-form decode's frames."""
    import asrkit.decode.longform as longform

    seen: list[torch.Tensor] = []
    real = longform.pause_cuts

    def record(loud, *a, **k):
        seen.append(loud.clone())
        return real(loud, *a, **k)

    monkeypatch.setattr(longform, "pause_cuts", record)
    p = tmp_path / "long"
    make_store(p, n=3, seed=9, min_frames=250, max_frames=400)
    (p / "conf.yaml").write_text(yaml.safe_dump({"type": "fbank", "num_mel_bins": DIM, "sample_frequency": 16000.0}))
    loaded = load_exp(ctc_exp, device="cpu", task="ctc")
    fs = FeatureStore(p)
    kw = dict(cmvn=loaded.cmvn, norm_vars=loaded.norm_vars, batch_size=4, input_dim=loaded.input_dim, max_frames=80)
    plain = {o.utt: o for o in iter_outputs(loaded.model, fs, **kw)}
    warped = {o.utt: o for o in iter_outputs(loaded.model, fs, warps=(0.8, 1.0, 1.25), **kw)}
    assert sorted(warped) == sorted(plain) == fs.keys()
    # the plain run and the three passes: each long utterance's loudness curve is the plain one
    n = len(fs.keys())
    assert len(seen) == 4 * n
    for i in range(n):
        assert all(torch.equal(seen[i], seen[n * k + i]) for k in range(1, 4))
    for u in fs.keys():
        assert warped[u].log_probs.shape == plain[u].log_probs.shape and warped[u].frames == plain[u].frames
        total = warped[u].log_probs.exp().sum(-1)
        assert torch.allclose(total, torch.ones(plain[u].log_probs.shape[0]), atol=1e-5)
