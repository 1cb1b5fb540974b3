"""The search without the model: `asrkit decode EXP EMISSIONS_DIR`, blank skipping, default-weight notice."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.decode import BeamDecoder, ModelOutput, load_units
from asrkit.decode.blank_skip import frames_back, skip_blanks
from asrkit.decode.emissions import save_emissions
from asrkit.errors import UsageError
from asrkit.lm import build_lm
from asrkit.pipeline import tune

from decode_util import make_ctc_exp, make_store, spec_emissions

LM_TEXT = "the cat sat\n" * 6 + "the cat sat on the mat\n" * 2 + "a mat\n"


def _run(capsys, *args: str, quiet: bool = True) -> tuple[int, str, str]:
    code = main((["-q"] if quiet else []) + list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def lm_arpa(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    (d / "lm.txt").write_text(LM_TEXT)
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    return d / "lm.arpa"


@pytest.fixture(scope="module")
def char_exp(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("exp")
    text = d / "train_text"
    text.write_text("u1 the cat sat on the mat a\n")
    return make_ctc_exp(d / "char", kind="char", impl="native", steps=0, text=text)


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("feats") / "dev"
    make_store(p, n=5, min_frames=20, max_frames=50)
    conf = p / "conf.yaml"  # a 25 ms frame shift: word times of saved emissions must use it, not 10 ms
    conf.write_text((conf.read_text() if conf.exists() else "") + "frame_shift: 25.0\n")
    return p


@pytest.fixture(scope="module")
def saved(tmp_path_factory, capsys_module, char_exp, feats) -> Path:
    em = tmp_path_factory.mktemp("em") / "em"
    assert main(["-q", "decode", str(char_exp), str(feats), "--device", "cpu", "--save-emissions", str(em)]) == 0
    return em


@pytest.fixture(scope="module")
def capsys_module():
    yield None


# -- decode EXP EMISSIONS_DIR ---------------------------------------------------------------------


@pytest.mark.parametrize("extra", [
    [],                                                                   # greedy
    ["--beam", "5", "--format", "ctm"],                                   # plain beam, word times
    ["--lm", "LM", "--lm-weight", "0.7", "--word-bonus", "0.5", "--format", "ctm"],   # flashlight + LM
    ["--lm", "LM", "--backend", "pyctcdecode", "--beam", "5", "--nbest", "2"],        # jsonl, n-best
    ["--lm", "LM", "--format", "jsonl", "--jobs", "2", "--blank-skip", "0.5"],       # worker processes
])
def test_decoding_saved_emissions_gives_what_the_features_give(capsys, char_exp, feats, saved, lm_arpa, extra):
    extra = [str(lm_arpa) if a == "LM" else a for a in extra]
    code, from_feats, err = _run(capsys, "decode", str(char_exp), str(feats), "--device", "cpu", *extra)
    assert code == 0, err
    code, from_saved, err = _run(capsys, "decode", str(char_exp), str(saved), *extra)
    assert code == 0, err
    assert from_saved == from_feats and from_saved.strip()  # (ctm: no line for an empty hypothesis)


def test_saved_emissions_record_the_frame_shift(char_exp, feats, saved):
    assert FeatureStore(feats).conf["frame_shift"] == 25.0
    assert json.loads((saved / "emissions.json").read_text())["frame_shift"] == 25.0


def test_tune_on_saved_emissions_then_decode_them_with_the_tuned_weights(capsys, char_exp, feats, saved, lm_arpa):
    """tune and decode read saved emissions through one function: the tuned point decodes to its WER."""
    grid = ["--lm-weights", "0.5,1", "--word-bonuses", "0,1", "--beam", "4"]
    code, skipped, err = _run(capsys, "tune", str(char_exp), str(saved), str(feats / "text"), "--lm", str(lm_arpa),
                              *grid, "--blank-skip", "1")
    assert code == 0, err
    code, out, err = _run(capsys, "tune", str(char_exp), str(saved), str(feats / "text"), "--lm", str(lm_arpa), *grid)
    assert code == 0, err
    assert out == skipped  # the default (off) is --blank-skip 1
    doc = tune.read_tuning(char_exp)
    code, hyp, err = _run(capsys, "decode", str(char_exp), str(saved), "--beam", "4", "--lm", str(lm_arpa))
    assert code == 0, err
    code, scored, err = _run(capsys, "decode", str(char_exp), str(saved), "--beam", "4", "--lm", str(lm_arpa),
                             "--lm-weight", str(doc["lm_weight"]), "--word-bonus", str(doc["word_bonus"]))
    assert code == 0 and scored == hyp
    (char_exp / tune.TUNING_FILE).unlink()


def test_emissions_of_another_exp_are_refused_in_one_line(capsys, tmp_path, char_exp, feats, lm_arpa):
    """Emissions with another number of classes (another model's) stop with one line, before any search."""
    units = load_units(char_exp)
    fake = SimpleNamespace(path=tmp_path / "gone", checkpoint=tmp_path / "gone" / "best.pt",
                           units=SimpleNamespace(kind="char", num_classes=units.num_classes + 3), subsampling=2)
    outs = [ModelOutput("u1", torch.log_softmax(torch.randn(8, units.num_classes + 3), -1), 16)]
    for _ in save_emissions(outs, tmp_path / "em", exp=fake):
        pass
    for extra in ([], ["--lm", str(lm_arpa)]):
        code, out, err = _run(capsys, "decode", str(char_exp), str(tmp_path / "em"), *extra)
        assert code == 1 and out == ""
        assert f"{units.num_classes + 3} classes but" in err and "another exp dir" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_model_options_with_saved_emissions(capsys, char_exp, saved, tmp_path):
    code, out, err = _run(capsys, "decode", str(char_exp), str(saved), "--save-emissions", str(tmp_path / "x"))
    assert code == 2 and out == "" and "already holds saved emissions" in err
    code, out, err = _run(capsys, "decode", str(char_exp), str(saved), "--chunk-seconds", "5")
    assert code == 2 and "does not run" in err
    code, out, err = _run(capsys, "decode", str(char_exp), str(saved), "--checkpoint", "last")
    assert code == 0 and "--checkpoint is not used" in err


# -- blank skipping -------------------------------------------------------------------------------


def test_skip_blanks_merges_runs_and_maps_frames_back():
    lp = torch.log_softmax(torch.tensor([[9.0, 0, 0]] * 3 + [[0, 9.0, 0]] + [[9.0, 0, 0]] * 2 + [[0, 9.0, 0]]), -1)
    kept, index = skip_blanks(lp, 0, 0.99)
    assert index.tolist() == [0, 3, 4, 6] and torch.equal(kept, lp[[0, 3, 4, 6]])
    assert frames_back([(1, 2), (3, 4)], index) == [(3, 4), (6, 7)]
    assert skip_blanks(lp, 0, 1.0) == (lp, None)
    with pytest.raises(UsageError, match="--blank-skip"):
        BeamDecoder(load_units_char(), blank_skip=0.0)


def load_units_char():
    return SimpleNamespace(kind="char", blank_id=0, units=["<blank>", "a"], num_classes=2, source="x")


def _padded(units, text: str, pad: int = 4) -> ModelOutput:
    """Letters of ``text`` each followed by ``pad`` sure blanks."""
    frames: list[dict[str, float]] = [{"<blank>": 0.99999}] * pad
    for ch in text:
        frames += [{"|" if ch == " " else ch: 0.9}] + [{"<blank>": 0.99999}] * pad
    return spec_emissions(units, frames)


@pytest.mark.parametrize("backend", ["flashlight", "pyctcdecode", None])
def test_blank_skip_of_1_changes_nothing_and_merging_keeps_word_times(char_exp, lm_arpa, backend):
    units = load_units(char_exp)
    outs = [_padded(units, "the cat sat"), _padded(units, "a mat", pad=6), _padded(units, "the mat sat on the mat")]
    lm = None if backend is None else lm_arpa
    beam = dict(beam=8, lm=lm, backend=backend)
    if lm is not None:
        beam.update(lm_weight=0.5, word_bonus=0.5)
    with BeamDecoder(units, blank_skip=1.0, **beam) as off, BeamDecoder(units, **beam, blank_skip=0.999) as on:
        for o in outs:
            a, b = off.decode(o), on.decode(o)
            assert a.tokens == b.tokens and a.units == b.units and a.out_frames == b.out_frames
            assert b.score == pytest.approx(a.score, abs=0.05)  # the merged frames were ~0 log-prob each
            if backend == "flashlight":  # the search's own word times, mapped back to the model's frames
                assert a.token_frames == b.token_frames and len(b.token_frames) == len(b.tokens)
    # the decoder with skipping pickles with it (worker processes search like the caller)
    with BeamDecoder(units, **beam, blank_skip=0.999) as on:
        assert on.settings()["blank_skip"] == 0.999


def test_blank_skip_cli_ctm_times_stay_in_the_models_frames(capsys, char_exp, saved, lm_arpa):
    base = ["decode", str(char_exp), str(saved), "--lm", str(lm_arpa), "--lm-weight", "0.5", "--word-bonus", "0",
            "--format", "ctm"]
    code, out, err = _run(capsys, *base, "--blank-skip", "0.5")
    assert code == 0, err
    frames = {o["utt"]: o["out_frames"] for o in map(json.loads, _run(
        capsys, "decode", str(char_exp), str(saved), "--format", "jsonl")[1].splitlines())}
    seconds = 0.025 * 2  # 25 ms frames x subsampling 2
    last: dict[str, float] = {}
    for line in out.splitlines():
        utt, _, start, dur, _word = line.split()
        start, dur = float(start), float(dur)
        assert dur >= 0 and start >= last.get(utt, 0.0) - 1e-9
        assert start + dur <= frames[utt] * seconds + 1e-6
        last[utt] = start
    code, _, err = _run(capsys, *base, "--blank-skip", "1.5")
    assert code == 2 and "--blank-skip must be" in err
    code, _, err = _run(capsys, "decode", str(char_exp), str(saved), "--blank-skip", "0.9")
    assert code == 2 and "beam search" in err


# -- the untuned-weights notice ---------------------------------------------------------------------


def test_untuned_weights_are_named_once(capsys, char_exp, saved, lm_arpa):
    code, _, err = _run(capsys, "decode", str(char_exp), str(saved), "--lm", str(lm_arpa), quiet=False)
    assert code == 0, err
    assert err.count("untuned") == 1 and "asrkit tune" in err
    code, _, err = _run(capsys, "decode", str(char_exp), str(saved), "--lm", str(lm_arpa), "--lm-weight", "1",
                        quiet=False)
    assert code == 0 and err.count("untuned word bonus") == 1
    code, _, err = _run(capsys, "decode", str(char_exp), str(saved), "--lm", str(lm_arpa), "--lm-weight", "1",
                        "--word-bonus", "0", quiet=False)
    assert code == 0 and "untuned" not in err
    code, _, err = _run(capsys, "decode", str(char_exp), str(saved), "--beam", "3", quiet=False)
    assert code == 0 and "untuned" not in err  # no LM, no weights


# -- the flashlight search's pruning (--beam-threshold / --beam-size-token) ----------------------------


def test_pruning_options_reach_the_search(capsys, char_exp, saved, lm_arpa):
    base = ["decode", str(char_exp), str(saved), "--lm", str(lm_arpa), "--lm-weight", "0.5", "--word-bonus", "0"]
    code, wide, err = _run(capsys, *base)
    assert code == 0, err
    code, narrow, err = _run(capsys, *base, "--beam-threshold", "0.5", "--beam-size-token", "1")
    assert code == 0, err
    units = load_units(char_exp)
    from asrkit.decode.emissions import open_saved_emissions

    outs = list(open_saved_emissions(char_exp, saved, units).outputs())
    for kw, out in (({}, wide), ({"beam_threshold": 0.5, "beam_size_token": 1}, narrow)):
        with BeamDecoder(units, beam=20, lm=lm_arpa, lm_weight=0.5, word_bonus=0.0, **kw) as dec:
            want = "".join(f"{o.utt} {' '.join(dec.decode(o).tokens)}".rstrip() + "\n" for o in outs)
        assert out == want
    assert narrow != wide  # one unit per frame within 0.5 of the best cannot spell what the wide search finds


def test_tune_sweeps_with_the_pruning_given(capsys, monkeypatch, tmp_path, char_exp, saved, lm_arpa):
    seen = {}
    search_grid = tune.search_grid

    def spy(*a, **kw):
        seen.update(kw.get("pruning") or {})
        return search_grid(*a, **kw)

    monkeypatch.setattr(tune, "search_grid", spy)
    monkeypatch.setattr(tune, "write_tuning", lambda *a, **kw: tmp_path / "lm_tuning.yaml")  # char_exp is shared
    code, out, err = _run(capsys, "tune", str(char_exp), str(saved), str(saved / "text"), "--lm", str(lm_arpa),
                          "--lm-weights", "0.5", "--word-bonuses", "0", "--beam-threshold", "0.5",
                          "--beam-size-token", "1")
    assert code == 0, err
    assert seen == {"beam_threshold": 0.5, "beam_size_token": 1}
    code, _, err = _run(capsys, "tune", str(char_exp), str(saved), str(saved / "text"), "--lm", str(lm_arpa),
                        "--beam-size-token", "0")
    assert code == 2 and "--beam-size-token must be >= 1" in err


@pytest.mark.parametrize("args, msg", [
    (["--lm", "LM", "--beam-threshold", "0"], "--beam-threshold must be a finite number > 0"),
    (["--lm", "LM", "--beam-threshold", "nan"], "--beam-threshold must be"),
    (["--lm", "LM", "--beam-size-token", "0"], "--beam-size-token must be >= 1"),
    (["--beam", "5", "--beam-threshold", "8"], "--beam-threshold prunes the flashlight LM search; give --lm LM"),
    (["--lm", "LM", "--backend", "pyctcdecode", "--beam-size-token", "3"],
     "--beam-size-token prunes the flashlight LM search; give --lm LM (this search is pyctcdecode's)"),
])
def test_pruning_options_bad_use_is_one_line(capsys, char_exp, saved, lm_arpa, args, msg):
    args = [str(lm_arpa) if a == "LM" else a for a in args]
    code, out, err = _run(capsys, "decode", str(char_exp), str(saved), *args)
    assert code == 2 and out == ""
    assert msg in err and len(err.strip().splitlines()) == 1, err
