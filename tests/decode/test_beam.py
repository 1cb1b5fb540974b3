"""CTC beam search with and without a word n-gram LM (asrkit.decode.beam, `asrkit decode --beam/--lm`)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.data.tokenizer import train_tokenizer
from asrkit.decode import BeamDecoder, ModelOutput, greedy_hypothesis, iter_outputs, load_exp, load_units
from asrkit.decode.beam import beam_hypotheses
from asrkit.decode.emissions import load_emissions
from asrkit.errors import DataError, InputError, UsageError
from asrkit.lm import build_lm
from asrkit.lm.arpa import read_unigrams

from decode_util import make_ctc_exp, spec_emissions

ASRKIT = [sys.executable, "-m", "asrkit"]
#: LM text: "cat" follows "the" far more often than "mat" does.
LM_TEXT = "the cat sat\n" * 6 + "the cat sat on the mat\n" * 2 + "a mat\n"


def _lm(folder: Path, text: str = LM_TEXT, order: int = 3) -> Path:
    (folder / "lm.txt").write_text(text)
    build_lm(folder / "lm.txt", folder / "lm.arpa", order, progress=False)
    return folder / "lm.arpa"


@pytest.fixture(scope="module")
def lm_arpa(tmp_path_factory) -> Path:
    return _lm(tmp_path_factory.mktemp("lm"))


def _units(tmp: Path, kind: str):
    text = tmp / "train_text"
    text.write_text("u1 the cat sat on the mat\nu2 a cat\n")
    train_tokenizer(kind, text, tmp / kind / "units", vocab_size=14 if kind == "bpe" else None)
    return load_units(tmp / kind)


@pytest.fixture(scope="module")
def char_units(tmp_path_factory):
    return _units(tmp_path_factory.mktemp("units"), "char")


@pytest.fixture(scope="module")
def bpe_units(tmp_path_factory):
    return _units(tmp_path_factory.mktemp("units"), "bpe")


def _spell(units, text: str, *, ambiguous: dict[int, dict[str, float]] | None = None) -> ModelOutput:
    """Clear char-by-char evidence for ``text`` (a blank between letters),
    with frame ``k`` of ``ambiguous`` replaced by a split between units."""
    frames: list[dict[str, float]] = []
    for i, ch in enumerate(text):
        frames.append({"|" if ch == " " else ch: 0.9})
        frames.append({"<blank>": 0.9})
    for k, spec in (ambiguous or {}).items():
        frames[2 * k] = spec
    return spec_emissions(units, frames)


# -- the search itself ----------------------------------------------------------------------------


@pytest.fixture(params=["flashlight", "pyctcdecode"])
def backend(request) -> str:
    """The two LM backends for char/bpe models."""
    return request.param


def test_lm_turns_ambiguous_letter_into_in_lm_words(char_units, lm_arpa, backend):
    """Acoustics say 'mat' a bit more than 'cat' after 'the'; the LM knows
    'the cat sat', so the fused search picks it while the plain beam and
    greedy keep 'the mat sat'."""
    out = _spell(char_units, "the mat sat", ambiguous={4: {"m": 0.5, "c": 0.45}})
    assert greedy_hypothesis(out, char_units).text == "the mat sat"
    plain = BeamDecoder(char_units, beam=8).decode(out)
    assert plain.text == "the mat sat"
    with BeamDecoder(char_units, beam=8, lm=lm_arpa, backend=backend) as dec:
        assert dec.backend == backend
        fused = dec.decode(out)
    assert fused.text == "the cat sat"
    assert fused.units == list("the|cat|sat")
    # the LM's preference costs acoustic score: the fused best is acoustically worse than the plain best
    assert fused.extra["am_score"] < plain.extra["am_score"]
    # lm weight 0: nothing but the word bonus (same for both) -> the acoustics decide again
    with BeamDecoder(char_units, beam=8, lm=lm_arpa, lm_weight=0.0, backend=backend) as dec:
        assert dec.decode(out).text == "the mat sat"
        dec.set_weights(0.5, 0.0)  # the LM back in, without reloading it
        assert dec.decode(out).text == "the cat sat"


def test_word_bonus_favours_more_words(char_units, lm_arpa):
    """pyctcdecode (open vocabulary): a space at 50/50 against blank: a large
    word bonus inserts it, a large penalty removes it."""
    out = _spell(char_units, "the cat", ambiguous={3: {"|": 0.5, "<blank>": 0.5}})
    texts = {}
    for bonus in (-20.0, 20.0):
        with BeamDecoder(char_units, beam=8, lm=lm_arpa, lm_weight=0.0, word_bonus=bonus,
                         backend="pyctcdecode") as dec:
            texts[bonus] = dec.decode(out).text
    assert texts == {-20.0: "thecat", 20.0: "the cat"}


def test_word_bonus_flashlight(char_units, lm_arpa):
    """flashlight (only lexicon words): the word 'a' at 50/50 against blank is
    kept by a word bonus and dropped by a penalty (small ones: a bonus larger
    than a letter's acoustic cost, ln 1e-4, fills every frame with 'a')."""
    out = _spell(char_units, "the cat a sat", ambiguous={8: {"a": 0.5, "<blank>": 0.5}})
    texts = {}
    for bonus in (-3.0, 3.0):
        with BeamDecoder(char_units, beam=8, lm=lm_arpa, lm_weight=0.0, word_bonus=bonus,
                         backend="flashlight") as dec:
            texts[bonus] = dec.decode(out).text
    assert texts == {-3.0: "the cat sat", 3.0: "the cat a sat"}


def test_plain_beam_finds_the_summed_best_where_greedy_does_not(char_units):
    """Frames [.5 blank, .4 a, .1 b] twice: greedy says '', the prefix beam 'a'."""
    out = spec_emissions(char_units, [{"<blank>": 0.5, "a": 0.4, "b": 0.1}] * 2)
    assert greedy_hypothesis(out, char_units).text == ""
    hyp = BeamDecoder(char_units, beam=4).decode(out)
    assert hyp.text == "a"
    p = out.log_probs.exp()  # (2, C); "a" = a a | a _ | _ a (0.56 before the floor every class gets)
    a, blank = char_units.units.index("a"), 0
    want = p[0, a] * p[1, a] + p[0, a] * p[1, blank] + p[0, blank] * p[1, a]
    assert hyp.score == pytest.approx(want.log().item(), abs=1e-5)


@pytest.mark.parametrize("use_lm", [False, True])
def test_nbest_count_order_and_best_first(char_units, lm_arpa, use_lm, backend):
    out = _spell(char_units, "the mat sat", ambiguous={4: {"m": 0.5, "c": 0.45}})
    with BeamDecoder(char_units, beam=10, nbest=4, lm=lm_arpa if use_lm else None,
                     backend=backend if use_lm else None) as dec:
        hyp = dec.decode(out)
    nbest = hyp.extra["nbest"]
    # flashlight's final beam holds several paths of the same words: fewer distinct hypotheses
    assert len(nbest) == 4 or (use_lm and backend == "flashlight" and len(nbest) >= 2)
    assert len({n["hyp"] for n in nbest}) == len(nbest)
    scores = [n["score"] for n in nbest]
    assert scores == sorted(scores, reverse=True)
    assert nbest[0]["hyp"] == hyp.text and nbest[0]["score"] == round(hyp.score, 4)
    assert {"the cat sat", "the mat sat"} <= {n["hyp"] for n in nbest}
    if not use_lm:
        assert all(n["score"] == n["am_score"] for n in nbest)


def test_no_frames_gives_an_empty_hypothesis(char_units, lm_arpa, capfd, backend):
    empty = ModelOutput("u0", torch.zeros(0, char_units.num_classes), 1)
    for lm in (None, lm_arpa):
        with BeamDecoder(char_units, beam=3, lm=lm, nbest=2, backend=backend if lm else None) as dec:
            hyp = dec.decode(empty)
        assert hyp.tokens == [] and hyp.score == 0.0 and hyp.extra["nbest"] == [{"hyp": "", "score": 0.0,
                                                                                  "am_score": 0.0}]
    assert capfd.readouterr().err == ""


def test_bpe_units_with_lm(bpe_units, lm_arpa, backend):
    """sentencepiece pieces: '▁' pieces start words; the decode spells the words back."""
    tok = bpe_units.tokenizer
    frames: list[dict[str, float]] = []
    for i in tok.encode("the cat sat".split()):
        frames += [{bpe_units.units[i]: 0.9}, {"<blank>": 0.9}]
    out = spec_emissions(bpe_units, frames)
    with BeamDecoder(bpe_units, beam=8, lm=lm_arpa, nbest=2, backend=backend) as dec:
        hyp = dec.decode(out)
    assert hyp.text == "the cat sat"
    assert hyp.units == bpe_units.symbols(tok.encode(["the", "cat", "sat"]))
    assert hyp.text == greedy_hypothesis(out, bpe_units).text


def test_read_unigrams(lm_arpa, tmp_path):
    assert sorted(read_unigrams(lm_arpa)) == ["a", "cat", "mat", "on", "sat", "the"]
    bad = tmp_path / "x.arpa"
    bad.write_text("hello\n")
    with pytest.raises(InputError, match="ARPA"):
        read_unigrams(bad)


def test_a_few_unspellable_lm_words_only_warn(char_units, tmp_path, capfd):
    lm = _lm(tmp_path, text=LM_TEXT + "the Ünïcode cat\n")
    with BeamDecoder(char_units, beam=4, lm=lm) as dec:
        assert dec.uses_lm
    err = " ".join(capfd.readouterr().err.split())
    assert "1 of 7 LM words use symbols the model's units lack ('Ü' 'ï')" in err


def test_bad_settings_and_inputs(char_units, lm_arpa, tmp_path):
    with pytest.raises(UsageError, match="--nbest 5 is larger than --beam 4"):
        BeamDecoder(char_units, beam=4, nbest=5)
    with pytest.raises(UsageError, match="--beam must be >= 1"):
        BeamDecoder(char_units, beam=0)
    with pytest.raises(UsageError, match="--lm-weight"):
        BeamDecoder(char_units, lm=lm_arpa, lm_weight=float("nan"))
    with pytest.raises(InputError, match="no such file"):
        BeamDecoder(char_units, lm=tmp_path / "missing.arpa")
    binary = tmp_path / "lm.bin"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0\0\0")
    with pytest.raises(InputError, match="kenlm binary"):
        BeamDecoder(char_units, lm=binary)
    (tmp_path / "uni").mkdir()
    with pytest.raises(DataError, match="order >= 2"):
        BeamDecoder(char_units, lm=_lm(tmp_path / "uni", order=1))
    (tmp_path / "upper").mkdir()
    with pytest.raises(DataError, match="'C' 'E' 'H' 'T'"):
        BeamDecoder(char_units, lm=_lm(tmp_path / "upper", text="THE CAT\nTHE HAT\n"))
    nan = ModelOutput("spk0-utt7", torch.full((5, char_units.num_classes), float("nan")), 10)
    with pytest.raises(DataError, match="spk0-utt7.*NaN"):
        BeamDecoder(char_units, beam=2).decode(nan)


# -- the command line ---------------------------------------------------------------------------


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def phone_exp(tmp_path_factory) -> Path:
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "phone", kind="phone", impl="native", steps=0)


@pytest.fixture(scope="module")
def char_exp(tmp_path_factory) -> Path:
    """A small char BiLSTM-CTC exp dir (native kernels, untrained: the CLI tests need its units, not its skill)."""
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "char", kind="char", impl="native", steps=0)


def test_cli_beam_lm_text_and_nbest(capsys, char_exp, store, lm_arpa):
    keys = FeatureStore(store).keys()
    code, out, err = _run(capsys, "decode", str(char_exp), str(store), "--device", "cpu", "--beam", "6",
                          "--lm", str(lm_arpa), "--lm-weight", "0.8", "--word-bonus", "1.0")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == keys

    code, out2, err = _run(capsys, "decode", str(char_exp), str(store), "--device", "cpu", "--beam", "6",
                           "--lm", str(lm_arpa), "--lm-weight", "0.8", "--word-bonus", "1.0", "--nbest", "3")
    assert code == 0, err
    rows = [json.loads(line) for line in out2.splitlines()]  # --nbest -> jsonl by default
    assert [r["utt"] for r in rows] == keys
    assert [f"{r['utt']} {r['hyp']}".rstrip() for r in rows] == lines
    for r in rows:
        assert 1 <= len(r["nbest"]) <= 3
        assert r["nbest"][0]["hyp"] == r["hyp"]
        assert [n["score"] for n in r["nbest"]] == sorted((n["score"] for n in r["nbest"]), reverse=True)
        assert r["frames"] > r["out_frames"] > 0 and "am_score" in r


def test_cli_plain_beam_on_a_phone_model(capsys, phone_exp, store):
    """--beam without --lm works for every unit kind (phones here): the
    prefix beam search over the model's units, scores are CTC log probabilities."""
    code, out, err = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", "--beam", "4",
                          "--format", "jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    # --nbest without --beam: beam 20, jsonl by default, the same best hypotheses here
    code, out2, err = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", "--nbest", "2")
    assert code == 0, err
    rows2 = [json.loads(line) for line in out2.splitlines()]
    assert all(1 <= len(r["nbest"]) <= 2 and r["nbest"][0]["hyp"] == r["hyp"] for r in rows2)
    assert [r["utt"] for r in rows2] == [r["utt"] for r in rows]
    assert [r["utt"] for r in rows] == FeatureStore(store).keys()
    for r in rows:
        assert r["score"] <= 0 and r["score"] == r["am_score"]
        assert r["hyp"].split() == [u for u in r["units"] if u != "sil"]
    assert "nbest" not in rows[0]


@pytest.mark.parametrize(
    "extra, code, message",
    [
        (["--lm", "LM", "--backend", "pyctcdecode"], 2, "cannot decode a phone model to words"),
        (["--backend", "flashlight"], 2, "give one with --lm"),
        (["--lm-weight", "0.3"], 2, "--lm-weight and --word-bonus weigh an LM"),
        (["--nbest", "2", "--format", "text"], 2, "use --format jsonl"),
        (["--beam", "2", "--nbest", "3"], 2, "larger than --beam"),
    ],
)
def test_cli_usage_errors(capsys, phone_exp, store, lm_arpa, extra, code, message):
    extra = [str(lm_arpa) if a == "LM" else a for a in extra]
    got, out, err = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", *extra)
    assert got == code and out == ""
    assert message in " ".join(err.split())


def test_cli_bad_lm_and_nan_emissions(capsys, char_exp, store, tmp_path):
    code, out, err = _run(capsys, "decode", str(char_exp), str(store), "--lm", str(tmp_path / "nope.arpa"))
    assert code == 1 and out == "" and "nope.arpa: no such file" in err and len(err.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.arpa"
    garbage.write_bytes(b"\xff\xfe not an lm \x00\x01")
    code, out, err = _run(capsys, "decode", str(char_exp), str(store), "--lm", str(garbage))
    assert code == 1 and out == "" and "garbage.arpa" in err and "Traceback" not in err

    nan_exp = Path(shutil.copytree(char_exp, tmp_path / "nan"))
    ckpt = nan_exp / "checkpoints" / "best.pt"
    state = torch.load(ckpt)
    for v in state["model"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    torch.save(state, ckpt)
    for extra in (["--beam", "3"], [], ["--save-emissions", str(tmp_path / "em")]):  # beam, greedy, saving
        code, out, err = _run(capsys, "decode", str(nan_exp), str(store), "--device", "cpu", *extra)
        assert code == 1 and out == "" and "NaN" in err and "Traceback" not in err, extra
    # the interrupted save left no store that looks complete
    assert not (tmp_path / "em" / "index.tsv").exists()
    with pytest.raises(InputError):
        list(load_emissions(tmp_path / "em"))


def test_cli_stderr_stays_clean(char_exp, store, lm_arpa):
    """kenlm prints loading chatter on file descriptor 2 and pyctcdecode logs
    warnings about small vocabularies: neither reaches the user."""
    r = subprocess.run([*ASRKIT, "-q", "decode", str(char_exp), str(store), "--device", "cpu",
                        "--lm", str(lm_arpa)], capture_output=True, text=True, timeout=120)  # --lm alone: beam 20
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert len(r.stdout.splitlines()) == len(FeatureStore(store).keys())


def test_cli_save_emissions_and_decode_them_again(capsys, char_exp, store, lm_arpa, tmp_path):
    """--save-emissions keeps the log-probs; a search over the saved ones gives
    what the command printed, without the model."""
    em = tmp_path / "em"
    # pyctcdecode: flashlight orders exactly tied hypotheses by memory address, and the untrained model
    # here ties a lot, so its n-best lists may differ between two runs
    args = ["decode", str(char_exp), str(store), "--device", "cpu", "--beam", "5", "--lm", str(lm_arpa),
            "--backend", "pyctcdecode", "--nbest", "2", "--save-emissions", str(em)]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    meta = json.loads((em / "emissions.json").read_text())
    assert meta["units"] == "char" and meta["utterances"] == len(FeatureStore(store).keys())
    assert (em / "text").read_text() == (store / "text").read_text()
    exp = load_exp(char_exp, device="cpu")
    direct = list(iter_outputs(exp.model, FeatureStore(store), cmvn=exp.cmvn, input_dim=exp.input_dim))
    saved = list(load_emissions(em))
    assert [o.utt for o in saved] == [o.utt for o in direct]
    for a, b in zip(saved, direct):
        assert a.frames == b.frames and torch.equal(a.log_probs, b.log_probs)
    with BeamDecoder(exp.units, beam=5, lm=lm_arpa, nbest=2, backend="pyctcdecode") as dec:
        again = [h.to_json() for h in beam_hypotheses(saved, dec)]
    printed = [json.loads(line) for line in out.splitlines()]
    for p in printed:  # the command also gives word times (seconds: 10 ms frames x subsampling 2)
        times = p.pop("times")
        assert len(times) == len(p["hyp"].split()) and all(0 <= s <= e <= 0.02 * p["out_frames"] for s, e in times)
    assert again == printed

    # saving again into the same folder replaces it; a folder of something else is refused
    code, _, err = _run(capsys, "decode", str(char_exp), str(store), "--device", "cpu", "--save-emissions", str(em))
    assert code == 0, err
    assert len(list(load_emissions(em))) == len(saved)
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine\n")
    code, out, err = _run(capsys, "decode", str(char_exp), str(store), "--save-emissions", str(other))
    assert code == 2 and out == "" and "does not hold saved emissions" in err
    assert (other / "keep.txt").read_text() == "mine\n"


def test_beam_width_is_capped_and_wide_beams_warn(char_units, capfd):
    from asrkit.decode.beam import MAX_BEAM, WARN_BEAM, check_beam

    with pytest.raises(UsageError, match=rf"--beam {MAX_BEAM + 1} is too wide; at most {MAX_BEAM}"):
        BeamDecoder(char_units, beam=MAX_BEAM + 1)
    assert check_beam(WARN_BEAM) == WARN_BEAM and capfd.readouterr().err == ""
    with BeamDecoder(char_units, beam=WARN_BEAM + 1) as dec:
        assert dec.decode(_spell(char_units, "the cat")).text == "the cat"
    assert "--beam 501 is wide" in " ".join(capfd.readouterr().err.split())


def test_cli_refuses_a_huge_beam_before_loading(capsys, phone_exp, store):
    code, out, err = _run(capsys, "decode", str(phone_exp), str(store), "--device", "cpu", "--beam", "100000")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--beam 100000 is too wide; at most 10000" in lines[0]


@pytest.mark.parametrize("use_lm", [False, True])
def test_search_in_worker_processes_gives_the_same_hypotheses(char_units, lm_arpa, use_lm):
    """--jobs: workers (forkserver, decoder rebuilt from its settings) return what one process does, in order."""
    import pickle

    from asrkit.decode.beam import search_outputs
    from asrkit.workers import START_METHOD

    assert START_METHOD in ("forkserver", "spawn")  # never fork a process that has torch / kenlm loaded
    outputs = [_spell(char_units, text, ambiguous={1: {"a": 0.4, "o": 0.35}}) for text in
               ("the cat sat", "on the mat", "the mat", "a cat")]
    for k, o in enumerate(outputs):
        o.utt = f"u{k}"
    kwargs = {"lm": lm_arpa, "lm_weight": 1.0} if use_lm else {}
    with BeamDecoder(char_units, beam=8, nbest=3, **kwargs) as dec:
        again = pickle.loads(pickle.dumps(dec))  # a decoder pickles as its settings
        assert again.settings() == dec.settings() and again is not dec
        again.close()
        one = list(search_outputs(outputs, char_units, dec, jobs=1))
        two = list(search_outputs(outputs, char_units, dec, jobs=2))
    assert [h.utt for h in two] == ["u0", "u1", "u2", "u3"]
    assert [(h.tokens, h.score, h.extra) for h in two] == [(h.tokens, h.score, h.extra) for h in one]
    greedy1 = list(search_outputs(outputs, char_units, None, jobs=1))
    greedy2 = list(search_outputs(outputs, char_units, None, jobs=3))
    assert [h.tokens for h in greedy2] == [h.tokens for h in greedy1]
