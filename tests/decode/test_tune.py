"""LM weight / word bonus tuning (asrkit.pipeline.tune, `asrkit tune`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import typer

from asrkit import log
from asrkit.cli.tune import register
from asrkit.data import FeatureStore
from asrkit.data.table import write_table
from asrkit.decode import ModelOutput, load_exp, load_units
from asrkit.pipeline import tune
from asrkit.decode.beam import decode_store
from asrkit.decode.emissions import save_emissions
from asrkit.errors import AsrkitError, DataError, InputError, UsageError
from asrkit.lm import build_lm
from asrkit.score import Counts

from decode_util import make_ctc_exp, make_store, spec_emissions

#: LM text: "cat" follows "the" far more often than "mat" does (as in test_beam.py).
LM_TEXT = "the cat sat\n" * 6 + "the cat sat on the mat\n" * 2 + "a mat\n"
#: Training text of the char exp: its units spell every LM word.
UNITS_TEXT = "the cat sat on the mat a\n"
#: What was said in the hand-made emissions below.
REFS = {"u1": "the cat sat", "u2": "the mat", "u3": "a mat on the mat"}


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lm_arpa(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    (d / "lm.txt").write_text(LM_TEXT)
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    return d / "lm.arpa"


@pytest.fixture(scope="module")
def char_exp(tmp_path_factory) -> Path:
    """A tiny char CTC exp dir (untrained: the hand-made emissions need its units, the store test its model)."""
    d = tmp_path_factory.mktemp("exp")
    text = d / "train_text"
    text.write_text(f"u1 {UNITS_TEXT}")
    return make_ctc_exp(d / "char", kind="char", impl="native", steps=0, text=text)


def _spell(units, text: str, utt: str, ambiguous: dict[int, dict[str, float]] | None = None) -> ModelOutput:
    """Clear evidence for each letter of ``text`` (a blank after each), letter ``k`` of ``ambiguous`` split."""
    frames: list[dict[str, float]] = []
    for ch in text:
        frames += [{"|" if ch == " " else ch: 0.9}, {"<blank>": 0.9}]
    for k, spec in (ambiguous or {}).items():
        frames[2 * k] = spec
    return spec_emissions(units, frames, utt)


def _hand_outputs(units) -> list[ModelOutput]:
    """u1: 'm' a bit above 'c' where 'the cat sat' was said (the LM must fix it);
    u2: a clear 'the mat' (a strong LM would turn it into 'the cat');
    u3: a clear 'a mat on the mat' (a strong LM deletes words)."""
    return [
        _spell(units, "the mat sat", "u1", {4: {"m": 0.5, "c": 0.45}}),
        _spell(units, "the mat", "u2", {4: {"m": 0.8, "c": 0.15}}),
        _spell(units, "a mat on the mat", "u3"),
    ]


def _save(outputs, folder: Path, exp_path: Path, units, num_classes: int | None = None) -> Path:
    """Write ``outputs`` the way `asrkit decode --save-emissions` does, as if from ``exp_path``."""
    fake = SimpleNamespace(path=exp_path, checkpoint=exp_path / "checkpoints" / "best.pt",
                           units=SimpleNamespace(kind=units.kind, num_classes=num_classes or units.num_classes),
                           subsampling=2)
    for _ in save_emissions(outputs, folder, exp=fake):
        pass
    return folder


@pytest.fixture(scope="module")
def hand(tmp_path_factory, char_exp):
    """(emissions dir, REF file) of the three hand-made utterances."""
    d = tmp_path_factory.mktemp("hand")
    units = load_units(char_exp)
    em = _save(_hand_outputs(units), d / "em", char_exp, units)
    ref = d / "text"
    write_table(ref, REFS)
    return em, ref


# -- a CLI harness: `register` on a fresh app, errors turned into exit codes like asrkit.cli.main -------


def _cli(capfd, *args: str) -> tuple[int, str, str]:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _group() -> None:  # keeps 'tune' a subcommand
        pass

    register(app)
    command = typer.main.get_command(app)
    capfd.readouterr()  # drop what the test printed before (build_lm chatter)
    log.set_quiet(True)
    try:
        command.main(args=list(args), prog_name="asrkit", standalone_mode=False)
        code = 0
    except AsrkitError as e:
        log.console.print(f"asrkit: {e}", highlight=False, soft_wrap=True)
        code = e.exit_code
    except typer.Exit as e:
        code = e.exit_code
    except Exception as e:  # click usage errors (missing option...)
        if not hasattr(e, "exit_code"):
            raise
        log.console.print(f"asrkit: {e}", highlight=False, soft_wrap=True)
        code = e.exit_code
    finally:
        log.set_quiet(False)
    cap = capfd.readouterr()
    return code, cap.out, cap.err


def _table_rows(out: str) -> list[list[str]]:
    """The grid rows of the printed table (the lines between the rule and the 'best:' line)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    return [line.split() for line in lines[start:] if not line.startswith("best:")]


# -- grid specs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, want", [
    ("0.3,0.5,1", [0.3, 0.5, 1.0]),
    ("1, 0.5,0.5", [0.5, 1.0]),  # sorted, duplicates once
    ("0:2:0.25", [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]),  # stop included
    ("0:1:0.1", [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),  # no float drift: 11 values, exact
    ("0:1:0.3", [0, 0.3, 0.6, 0.9]),  # stop not reached exactly
    ("-2:4:1", [-2, -1, 0, 1, 2, 3, 4]),
    ("1.5", [1.5]),
    ("2:2:1", [2.0]),
])
def test_parse_grid(spec, want):
    got = tune.parse_grid(spec, "--word-bonuses")
    assert got == want  # exact float equality: 0.1 * 3 would be 0.30000000000000004
    assert all(isinstance(v, float) for v in got)


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ("0.3,,1", "'' is not a finite number"),
    ("a,b", "'a' is not a finite number"),
    ("0:2", "START:STOP:STEP"),
    ("0:2:0.5:1", "START:STOP:STEP"),
    ("0:2:0", "STEP must be > 0"),
    ("0:2:-1", "STEP must be > 0"),
    ("2:0:0.5", "STOP is below START"),
    ("nan", "not a finite number"),
    ("0:inf:1", "not a finite number"),
    ("0:100:0.001", "at most 1000"),
    ("-1,0.5", "values must be >= 0"),
])
def test_parse_grid_refuses(spec, message):
    with pytest.raises(UsageError, match="--lm-weights") as e:
        tune.parse_grid(spec, "--lm-weights", minimum=0.0)
    assert message in str(e.value)


def test_default_grids_parse():
    for backend in tune.DEFAULT_GRIDS:
        w, b = tune.default_grids(backend)
        assert tune.parse_grid(w, "w", minimum=0.0)[0] == 0.0 and len(tune.parse_grid(b, "b")) > 1


# -- the search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["pyctcdecode", "flashlight"])
def test_lm_weight_fixes_an_error_and_too_much_lm_hurts(char_exp, lm_arpa, backend):
    """Without the LM (weight 0) u1 is 'the mat sat' (1 error); some LM
    weight fixes it; a very large one deletes words. The best point is in
    between, chosen by the tie rule among the error-free ones."""
    units = load_units(char_exp)
    outputs = _hand_outputs(units)
    refs = {u: REFS[u].split() for u in REFS}
    found = tune.search_grid(units, outputs, refs, lm_arpa, lm_weights=[0.0, 0.25, 0.5, 1.0, 8.0],
                             word_bonuses=[-2.0, 0.0, 2.0], beam=8, backend=backend)
    by = {(p.lm_weight, p.word_bonus): p for p in found.points}
    assert [(p.lm_weight, p.word_bonus) for p in found.points] == [(w, b) for w in (0, 0.25, 0.5, 1, 8)
                                                                   for b in (-2, 0, 2)]
    assert all(by[0.0, b].errors == 1 and by[0.0, b].counts.sub == 1 for b in (-2.0, 0.0, 2.0))
    assert all(by[8.0, b].errors >= 3 for b in (-2.0, 0.0, 2.0))  # the LM swamps the acoustics: u3 loses words
    assert by[0.5, 0.0].errors == 0 and by[0.5, 0.0].words == 3 + 2 + 5
    best = found.best
    assert best.errors == 0 and best.wer == 0.0
    # error-free: lm weights 0.25..1 with every bonus; ties -> |word_bonus| 0, then the smallest lm weight
    assert (best.lm_weight, best.word_bonus) == (0.25, 0.0)
    assert found.backend == backend


@pytest.mark.parametrize("backend, weight", [("pyctcdecode", 3.0), ("flashlight", 4.0)])
def test_word_bonus_axis(char_exp, lm_arpa, backend, weight):
    """At a high LM weight the LM deletes words unless a word bonus pays for them: bonus 2 wins."""
    units = load_units(char_exp)
    refs = {u: REFS[u].split() for u in REFS}
    found = tune.search_grid(units, _hand_outputs(units), refs, lm_arpa, lm_weights=[weight],
                             word_bonuses=[-2.0, 0.0, 2.0], beam=8, backend=backend)
    errors = [p.errors for p in found.points]
    assert errors[2] < errors[1] <= errors[0]
    assert found.best.word_bonus == 2.0


def test_best_point_tie_rule():
    def pt(w: float, b: float, errors: int) -> tune.GridPoint:
        return tune.GridPoint(w, b, Counts(10, 10, 10 - errors, errors, 0, 0))

    pts = [pt(0.0, 0.0, 3), pt(1.0, -1.0, 1), pt(0.5, 1.0, 1), pt(2.0, 1.0, 1), pt(1.5, -1.0, 1), pt(0.5, 2.0, 2),
           pt(0.5, -1.0, 1)]
    # fewest errors (1); among those |word_bonus| 1 everywhere, the smallest lm weight 0.5, then bonus -1 before +1
    want = (0.5, -1.0)
    assert (tune.best_point(pts).lm_weight, tune.best_point(pts).word_bonus) == want
    assert (tune.best_point(pts[::-1]).lm_weight, tune.best_point(pts[::-1]).word_bonus) == want
    assert tune.best_point([pt(3.0, 0.0, 1), pt(0.5, 1.0, 1)]).lm_weight == 3.0  # |bonus| before lm weight


def test_jobs_2_gives_the_same_table_as_jobs_1(capfd, char_exp, hand, lm_arpa):
    em, ref = hand
    args = ["tune", str(char_exp), str(em), str(ref), "--lm", str(lm_arpa), "--lm-weights", "0,0.5,1,4",
            "--word-bonuses=-1:1:1", "--beam", "8"]
    code1, out1, err1 = _cli(capfd, *args)
    assert code1 == 0, err1
    code2, out2, err2 = _cli(capfd, *args, "--jobs", "2")
    assert code2 == 0, err2
    assert out2 == out1
    rows = _table_rows(out1)
    assert len(rows) == 4 * 3 and sum(r[-1] == "*" for r in rows if len(r) == 8) == 1
    assert out1.splitlines()[-1].startswith("best: lm_weight 0.5 word_bonus 0 %WER 0.00 [ 0 / 10,")


def test_cli_writes_tuning_that_read_tuning_reads(capfd, char_exp, hand, lm_arpa, tmp_path):
    em, ref = hand
    exp = Path(char_exp)
    (exp / tune.TUNING_FILE).unlink(missing_ok=True)
    assert tune.read_tuning(exp) is None
    code, out, err = _cli(capfd, "tune", str(exp), str(em), str(ref), "--lm", str(lm_arpa), "--lm-weights", "4",
                          "--word-bonuses", "-2,0,2", "--beam", "8", "--backend", "flashlight")
    assert code == 0, err
    assert err == ""  # -q: no progress; kenlm / pyctcdecode chatter stays off stderr
    doc = tune.read_tuning(exp)
    assert doc["lm_weight"] == 4.0 and doc["word_bonus"] == 2.0
    assert doc["lm"] == str(lm_arpa.resolve()) and doc["ref"] == str(ref.resolve())
    assert doc["data"] == str(em.resolve()) and doc["lexicon"] is None
    assert doc["beam"] == 8 and doc["backend"] == "flashlight" and doc["grid_size"] == 3
    assert doc["word_bonuses"] == [-2.0, 0.0, 2.0] and doc["lm_weights"] == [4.0] and doc["utterances"] == 3
    assert doc["errors"] == int(_table_rows(out)[2][3].split("/")[0]) and doc["words"] == 10
    assert doc["wer"] == pytest.approx(100.0 * doc["errors"] / 10, abs=1e-4) and "date" in doc
    assert not list(exp.glob(f".{tune.TUNING_FILE}.*"))  # no temp file left
    # decode's helper: the same LM gets the tuned weights, another LM the defaults (with a warning)
    assert tune.tuned_weights(exp, lm_arpa) == (4.0, 2.0)
    other = tmp_path / "other.arpa"
    other.write_text(lm_arpa.read_text())
    assert tune.tuned_weights(exp, other) is None
    assert "was tuned for LM" in " ".join(capfd.readouterr().err.split())
    assert tune.tuned_weights(exp, lm_arpa, backend="flashlight") == (4.0, 2.0)
    assert tune.tuned_weights(exp, lm_arpa, backend="pyctcdecode") is None


@pytest.mark.parametrize("text, message", [
    ("lm_weight: [1\n", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("word_bonus: 1\n", "'lm_weight' must be a finite number >= 0"),
    ("lm_weight: -1\nword_bonus: 1\n", "'lm_weight' must be a finite number >= 0"),
    ("lm_weight: 1\nword_bonus: .nan\n", "'word_bonus' must be a finite number"),
    ("lm_weight: true\nword_bonus: 0\n", "'lm_weight' must be"),
])
def test_read_tuning_refuses_malformed(tmp_path, text, message):
    (tmp_path / tune.TUNING_FILE).write_text(text)
    with pytest.raises(InputError, match=tune.TUNING_FILE) as e:
        tune.read_tuning(tmp_path)
    assert message in str(e.value)
    (tmp_path / tune.TUNING_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(InputError, match="cannot read"):
        tune.read_tuning(tmp_path)


def test_feature_store_end_to_end_equals_saved_emissions(capfd, char_exp, lm_arpa, tmp_path):
    """DATA as a feature store: the model runs once in memory, nothing is
    written into the store, and the grid is the one of its saved emissions."""
    feats = tmp_path / "feats"
    utts = make_store(feats, n=4, min_frames=20, max_frames=40)
    before = sorted((p.name, p.stat().st_size) for p in feats.iterdir())
    ref = feats / "text"
    # (no LM weight 0 with bonus 0: flashlight breaks exact score ties by memory order, not reproducibly)
    grid = ["--lm-weights", "0.5,1", "--word-bonuses", "0,2", "--beam", "4", "--device", "cpu"]
    code, out_feats, err = _cli(capfd, "tune", str(char_exp), str(feats), str(ref), "--lm", str(lm_arpa), *grid)
    assert code == 0, err
    assert sorted((p.name, p.stat().st_size) for p in feats.iterdir()) == before
    doc = tune.read_tuning(char_exp)
    assert doc["data"] == str(feats.resolve()) and doc["utterances"] == len(utts)
    assert doc["checkpoint"].endswith("best.pt") and doc["words"] == 3 * len(utts)

    em = tmp_path / "em"
    exp = load_exp(char_exp, device="cpu")
    for _ in decode_store(exp, FeatureStore(feats), None, save=em):
        pass
    code, out_em, err = _cli(capfd, "tune", str(char_exp), str(em), str(ref), "--lm", str(lm_arpa), *grid)
    assert code == 0, err
    assert _table_rows(out_em) == _table_rows(out_feats) and len(_table_rows(out_em)) == 4


# -- errors ---------------------------------------------------------------------------------------


def test_emissions_of_another_exp_dir_are_refused(capfd, char_exp, hand, lm_arpa, tmp_path):
    _, ref = hand
    cwd = os.getcwd()
    units = load_units(char_exp)
    other_exp = tmp_path / "other_exp"
    other_exp.mkdir()
    _save(_hand_outputs(units), tmp_path / "em_other", other_exp, units)
    code, out, err = _cli(capfd, "tune", str(char_exp), str(tmp_path / "em_other"), str(ref), "--lm", str(lm_arpa))
    assert code == 1 and out == ""
    assert "were saved from exp dir" in err and len(err.strip().splitlines()) == 1

    # a relative exp path (as 'asrkit decode exp/ctc ...' saves it) is checked from where it was saved
    os.chdir(Path(char_exp).parent)
    try:
        _save(_hand_outputs(units), tmp_path / "em_rel", Path(Path(char_exp).name), units)
        code, out, err = _cli(capfd, "tune", str(char_exp), str(tmp_path / "em_rel"), str(ref), "--lm", str(lm_arpa),
                              "--lm-weights", "0.5", "--word-bonuses", "0")
        assert code == 0, err
        code, out, err = _cli(capfd, "tune", str(char_exp), str(tmp_path / "em_other"), str(ref), "--lm",
                              str(lm_arpa))
        assert code == 1 and "were saved from exp dir" in err
    finally:
        os.chdir(cwd)

    # the rows have another number of classes than the exp's units
    wider = [ModelOutput(o.utt, torch.cat([o.log_probs, torch.full((o.out_frames, 1), -20.0)], 1), o.frames)
             for o in _hand_outputs(units)]
    _save(wider, tmp_path / "em_wide", char_exp, units, num_classes=units.num_classes + 1)
    code, out, err = _cli(capfd, "tune", str(char_exp), str(tmp_path / "em_wide"), str(ref), "--lm", str(lm_arpa))
    assert code == 1 and out == "" and f"{units.num_classes + 1} classes" in err


def test_utterances_missing_from_ref(capfd, char_exp, hand, lm_arpa, tmp_path):
    em, _ = hand
    ref = tmp_path / "text"
    write_table(ref, {"u2": REFS["u2"], "zz": "a cat"})  # u1, u3 missing; an extra ref utt is fine
    code, out, err = _cli(capfd, "tune", str(char_exp), str(em), str(ref), "--lm", str(lm_arpa))
    assert code == 1 and out == ""
    assert "no reference for 2 of the 3 utterances in DATA (u1, u3)" in " ".join(err.split())
    with pytest.raises(DataError, match="2 of the 3"):
        tune.references(ref, ["u1", "u2", "u3"])
    write_table(ref, {**REFS, "zz": "a cat"})
    assert list(tune.references(ref, ["u1", "u2", "u3"])) == ["u1", "u2", "u3"]


@pytest.mark.parametrize("case, code, message", [
    ("bad_spec", 2, "--lm-weights 0:2:: '' is not a finite number"),
    ("negative_weight", 2, "values must be >= 0"),
    ("bad_jobs", 2, "--jobs must be >= 1"),
    ("bad_backend", 2, "--backend must be one of"),
    ("missing_lm", 1, "nope.arpa: no such file"),
    ("missing_ref", 1, "noref: no such file"),
    ("missing_exp", 1, "no such exp dir"),
    ("missing_data", 1, "no such folder"),
    ("not_a_store", 1, "not a feature store"),
])
def test_cli_errors_are_one_line(capfd, char_exp, hand, lm_arpa, tmp_path, case, code, message):
    em, ref = hand
    exp, data, lm = str(char_exp), str(em), str(lm_arpa)
    extra: list[str] = []
    if case == "bad_spec":
        extra = ["--lm-weights", "0:2:"]
    elif case == "negative_weight":
        extra = ["--lm-weights", "-1:1:1"]
    elif case == "bad_jobs":
        extra = ["--jobs", "0"]
    elif case == "bad_backend":
        extra = ["--backend", "kaldi"]
    elif case == "missing_lm":
        lm = str(tmp_path / "nope.arpa")
    elif case == "missing_ref":
        ref = tmp_path / "noref"
    elif case == "missing_exp":
        exp = str(tmp_path / "noexp")
    elif case == "missing_data":
        data = str(tmp_path / "nodata")
    elif case == "not_a_store":
        (tmp_path / "empty").mkdir()
        data = str(tmp_path / "empty")
    got, out, err = _cli(capfd, "tune", exp, data, str(ref), "--lm", lm, *extra)
    assert got == code and out == ""
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_phone_model(capfd, lm_arpa, tmp_path):
    """A phone model decodes to words through its lexicon (flashlight, the default);
    pyctcdecode cannot (a usage error, exit 2)."""
    exp = make_ctc_exp(tmp_path / "phone", kind="phone", impl="native", steps=0)
    units = load_units(exp)
    frames = [f for ph in ["k", "ae", "t", "sil", "s", "ae", "t"] for f in ({ph: 0.9}, {"<blank>": 0.9})]
    em = _save([spec_emissions(units, frames, "u1")], tmp_path / "em", exp, units)
    ref = tmp_path / "text"
    write_table(ref, {"u1": "cat sat"})
    (tmp_path / "lm.txt").write_text("a cat sat on a mat\na cat sat\n")
    build_lm(tmp_path / "lm.txt", tmp_path / "words.arpa", 2, progress=False)
    args = ["tune", str(exp), str(em), str(ref), "--lm-weights", "0,0.5", "--word-bonuses", "0,1", "--beam", "8"]
    code, out, err = _cli(capfd, *args, "--lm", str(tmp_path / "words.arpa"))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("best: lm_weight 0 word_bonus 0 %WER 0.00 [ 0 / 2,")
    assert tune.read_tuning(exp)["backend"] == "flashlight"

    code, out, err = _cli(capfd, *args, "--lm", str(tmp_path / "words.arpa"), "--backend", "pyctcdecode")
    assert code == 2 and out == "" and "pyctcdecode cannot decode a phone model" in err


def test_decoder_errors_pass_through(capfd, char_exp, hand, tmp_path):
    """An LM the char units cannot spell: BeamDecoder's DataError, one line, exit 1."""
    em, ref = hand
    (tmp_path / "upper.txt").write_text("THE CAT SAT\nTHE MAT\n")
    build_lm(tmp_path / "upper.txt", tmp_path / "upper.arpa", 2, progress=False)
    code, out, err = _cli(capfd, "tune", str(char_exp), str(em), str(ref), "--lm", str(tmp_path / "upper.arpa"),
                          "--jobs", "2")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "LM words use symbols the model's char units" in " ".join(err.split())
    assert not (Path(char_exp) / tune.TUNING_FILE).exists() or "upper" not in tune.read_tuning(char_exp)["lm"]


def test_emissions_meta_json_is_checked(capfd, char_exp, hand, lm_arpa, tmp_path):
    import shutil

    em, ref = hand
    bad = Path(shutil.copytree(em, tmp_path / "em"))
    (bad / "emissions.json").write_text("{not json")
    code, out, err = _cli(capfd, "tune", str(char_exp), str(bad), str(ref), "--lm", str(lm_arpa))
    assert code == 1 and out == "" and "emissions.json: cannot read" in err
    meta = json.loads((em / "emissions.json").read_text())
    (bad / "emissions.json").write_text(json.dumps({**meta, "units": "bpe"}))
    code, _, err = _cli(capfd, "tune", str(char_exp), str(bad), str(ref), "--lm", str(lm_arpa))
    assert code == 1 and "are of bpe units" in err
