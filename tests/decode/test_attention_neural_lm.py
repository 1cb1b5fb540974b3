"""Neural LM shallow fusion in the attention beam search (asrkit.decode.neural_lm).

A tiny Transformer attention model (char units) and two tiny neural LMs (LSTM and
Transformer) trained on its units with ``asrkit train lm ... units.dir=EXP/units``,
each in seconds; the search itself is also run on the fake decoder of
attention_util.py, whose log-probabilities are known, so that the fused scores can
be recomputed by hand (the LM's side by ``forward`` over whole sequences, not by
``step``).
"""
from __future__ import annotations

import itertools
import json
import random
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from asrkit.cli.main import main
from asrkit.data import FeatureStore
from asrkit.data.tokenizer import train_tokenizer
from asrkit.data.units import UnitMap, load_units_dir
from asrkit.decode.attention import attention_beam_search
from asrkit.decode.fusion import FusionLM, open_fusion_lm
from asrkit.decode.neural_lm import NeuralFusionLM, check_shared_units
from asrkit.decode.word_lm import WordLM
from asrkit.errors import InputError, UsageError
from asrkit.lm.neural import NeuralLM
from asrkit.pipeline.rescore import acoustic_score

from attention_util import EOS, Encoded, FakeSeq2Seq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import make_store  # noqa: E402

WORDS = ["w0", "w1", "w2", "w3", "w4"]  # the words of train_helpers' stores
LM_SMALL = ["model.hidden=16", "model.layers=1", "data.bptt=16", "data.batch_blocks=8", "train.epochs=2",
            "train.threads=1", "optim.lr=1e-2", "optim.warmup_steps=2", "train.tensorboard=false", "units.kind=char"]
LM_MODELS = {"lstm": ["model.embed_dim=16"],
             "transformer": ["model.type=lm_transformer", "model.heads=2", "model.ff_mult=2", "model.max_len=64"]}
TF_TINY = ["model.hidden=16", "model.heads=2", "model.ff_mult=2", "model.encoder_layers=1", "model.decoder_layers=1",
           "model.subsampling=2", "model.conv_channels=4", "train.epochs=2", "data.max_frames=200", "data.buckets=2",
           "optim.lr=1e-2", "optim.warmup_steps=2", "train.tensorboard=false", "units.kind=char",
           "features.specaugment=false", "train.threads=1"]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stores")
    return {"train": make_store(root / "train", n=12, seed=1), "dev": make_store(root / "dev", n=4, seed=2)}


@pytest.fixture(scope="module")
def att_exp(tmp_path_factory, stores) -> Path:
    """A tiny joint CTC/attention Transformer on char units, trained by the CLI."""
    out = tmp_path_factory.mktemp("att") / "tf"
    assert main(["-q", "train", "transformer", "--train", str(stores["train"]), "--dev", str(stores["dev"]),
                 "--out", str(out), *TF_TINY]) == 0
    return out


@pytest.fixture(scope="module")
def lm_text(tmp_path_factory) -> tuple[Path, Path]:
    rng = random.Random(0)
    d = tmp_path_factory.mktemp("lmtext")
    for name, n in (("train.txt", 200), ("dev.txt", 20)):
        (d / name).write_text("".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) + "\n"
                                      for _ in range(n)))
    return d / "train.txt", d / "dev.txt"


@pytest.fixture(scope="module")
def lm_exps(tmp_path_factory, att_exp, lm_text) -> dict[str, Path]:
    """LSTM and Transformer LMs on the attention model's units (units.dir=EXP/units)."""
    root = tmp_path_factory.mktemp("lms")
    out = {}
    for name, extra in LM_MODELS.items():
        out[name] = root / name
        assert main(["-q", "train", "lm", "--text", str(lm_text[0]), "--dev", str(lm_text[1]), "--out",
                     str(out[name]), *LM_SMALL, *extra, f"units.dir={att_exp / 'units'}"]) == 0
    return out


@pytest.fixture(scope="module")
def units(att_exp) -> UnitMap:
    return load_units_dir(att_exp / "units", "char")


def _enc(B: int, S: int, C: int, seed: int = 0) -> Encoded:
    """The fake's encoder output: random memory, utterances of different lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([S - 2 * b for b in range(B)])
    memory = torch.randn(B, S, C, generator=g) * (torch.arange(S)[None, :, None] < lengths[:, None, None])
    return Encoded(memory, lengths, None)


def _att_logprob(model: FakeSeq2Seq, enc: Encoded, b: int, seq: list[int]) -> float:
    """The fake decoder's log-probability of ``seq`` then <eos> for utterance ``b``, token by token."""
    mem_mean = enc.memory[b].sum(0) / enc.lengths[b].clamp(min=1)
    total = 0.0
    for i, tok in enumerate([*seq, EOS]):
        total += float(torch.log_softmax(model._logits(tuple(seq[:i]), mem_mean).float(), -1)[tok])
    return total


# ------------------------------------------------------------------ the scores


@pytest.mark.parametrize("kind", list(LM_MODELS))
def test_fused_scores_are_the_decoder_plus_the_weighted_lm_of_every_sequence(lm_exps, units, kind):
    """A beam wide enough to keep every sequence of <= 2 tokens: the search's n best are the best of
    all sequences under att + w * ln P_lm(y </s>), the LM part computed by forward over the whole
    sequence (NeuralLM.token_scores), not by step."""
    C, w = units.num_classes, 0.7
    lm = NeuralFusionLM(lm_exps[kind], units)
    assert isinstance(lm, FusionLM)
    model = FakeSeq2Seq(C, has_ctc=False, utt_scale=0.3, seed=3)
    enc = _enc(1, 8, C)
    found = attention_beam_search(model, enc, beam=C * C, lm=lm, lm_weight=w, nbest=5, max_len=2, pre_beam=C)[0]
    seqs = [[]] + [[a] for a in range(1, C)] + [[a, b] for a, b in itertools.product(range(1, C), repeat=2)]
    lm_scores = [float(s.sum()) for s in lm.lm.token_scores(seqs)]
    scored = sorted(((_att_logprob(model, enc, 0, s) + w * lm_s, s, lm_s) for s, lm_s in zip(seqs, lm_scores)),
                    key=lambda t: -t[0])
    assert [h.ids for h in found] == [s for _, s, _ in scored[:5]]
    for h, (total, _, lm_s) in zip(found, scored):
        assert h.parts["lm"] == pytest.approx(lm_s, abs=1e-4)
        assert h.score == pytest.approx(total, abs=1e-4)
        assert h.score == pytest.approx(h.parts["att"] + w * h.parts["lm"], abs=1e-4)


def test_the_lm_boundary_is_the_decoders_eos(lm_exps, units):
    """Id 0 is <blank>/<eos> in the acoustic units and </s> for the LM: the gain of <eos> after
    <sos> is ln P_lm(</s> | <s>)."""
    lm = NeuralFusionLM(lm_exps["lstm"], units)
    assert units.units[0] == lm.lm.units.units[0] == "<blank>"
    rows = lm.init_rows(2)
    gains = lm.score_rows(rows, torch.tensor([[EOS, 5], [EOS, 6]]))
    want = lm.lm.token_scores([[]])[0]  # ln P(</s> | <s>)
    assert gains[0, 0] == pytest.approx(float(want[0]), abs=1e-5) and gains[1, 0] == gains[0, 0]
    rows = lm.select_rows(rows, torch.tensor([1, 1, 0]), torch.tensor([7, 8, 7]))
    after = lm.score_rows(rows, torch.tensor([[EOS], [EOS], [EOS]]))[:, 0]
    assert after[0] == pytest.approx(float(lm.lm.token_scores([[7]])[0][1]), abs=1e-5) and after[0] == after[2]
    assert after[1] == pytest.approx(float(lm.lm.token_scores([[8]])[0][1]), abs=1e-5)


@pytest.mark.parametrize("kind", list(LM_MODELS))
def test_a_batch_decodes_as_its_utterances_one_by_one(lm_exps, units, kind):
    C = units.num_classes
    lm = NeuralFusionLM(lm_exps[kind], units)
    model = FakeSeq2Seq(C, seed=5)
    enc = _enc(3, 12, C, seed=1)
    enc = Encoded(enc.memory, enc.lengths, enc.memory * 2.0)  # a CTC head too
    kw = dict(beam=4, lm=lm, lm_weight=0.5, ctc_weight=0.3, nbest=3, length_bonus=0.2)
    batch = attention_beam_search(model, enc, **kw)
    for b in range(3):
        one = attention_beam_search(model, enc.index(torch.tensor([b])), **kw)[0]
        assert [h.ids for h in one] == [h.ids for h in batch[b]]
        for x, y in zip(one, batch[b]):
            assert x.score == pytest.approx(y.score, abs=1e-4)
            assert x.parts["lm"] == pytest.approx(y.parts["lm"], abs=1e-4)


def test_weight_zero_is_no_lm(lm_exps, units):
    C = units.num_classes
    lm = NeuralFusionLM(lm_exps["transformer"], units)
    model = FakeSeq2Seq(C, seed=7)
    enc = _enc(2, 10, C, seed=2)
    without = attention_beam_search(model, enc, beam=3, nbest=2)
    zero = attention_beam_search(model, enc, beam=3, nbest=2, lm=lm, lm_weight=0.0)
    assert [[(h.ids, h.score, h.parts) for h in u] for u in zero] == \
        [[(h.ids, h.score, h.parts) for h in u] for u in without]
    fused = attention_beam_search(model, enc, beam=3, nbest=2, lm=lm, lm_weight=2.0)
    assert all("lm" in h.parts for u in fused for h in u)


# ------------------------------------------------------------------ units


def test_units_must_be_the_models(lm_exps, units, tmp_path):
    lm_units = NeuralLM.load(lm_exps["lstm"]).units
    check_shared_units(lm_units, units, "lm")  # the same: no error
    word = UnitMap("word", ["<eos>", "<unk>", *WORDS])
    with pytest.raises(UsageError, match=r"word-unit LM.*units\.dir=EXP/units.*asrkit rescore"):
        check_shared_units(word, units, "lm")
    (tmp_path / "text").write_text("u1 w5 w6 w7 w8 w9\n")
    train_tokenizer("char", tmp_path / "text", tmp_path / "other")
    other = load_units_dir(tmp_path / "other", "char")
    with pytest.raises(UsageError, match=r"id 4 is '5' in the LM, '0' in the model.*units\.kind=char "
                                         r"units\.dir=EXP/units"):
        check_shared_units(other, units, "lm")
    train_tokenizer("bpe", tmp_path / "text", tmp_path / "bpe", vocab_size=10)
    with pytest.raises(UsageError, match="the LM's units are bpe, the model's char"):
        check_shared_units(load_units_dir(tmp_path / "bpe", "bpe"), units, "lm")
    fewer = UnitMap("char", units.units[:-1])
    with pytest.raises(UsageError, match=f"{units.num_classes - 1} char units, the model {units.num_classes}"):
        check_shared_units(fewer, units, "lm")
    phones = UnitMap("phone", ["<blank>", "aa", "b"])
    with pytest.raises(UsageError, match="units are phones"):
        check_shared_units(lm_units, phones, "lm")


def test_open_fusion_lm_picks_by_path(lm_exps, units, tmp_path):
    assert isinstance(open_fusion_lm(lm_exps["lstm"], units), NeuralFusionLM)
    arpa = tmp_path / "lm.arpa"
    arpa.write_text("\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t0\n-1\t</s>\n-1\t<unk>\n-1\tw0\t0\n"
                    "\n\\2-grams:\n-0.2\t<s> w0\n\n\\end\\\n")
    assert isinstance(open_fusion_lm(arpa, units), WordLM)
    with pytest.raises(InputError, match="no such file or folder"):
        open_fusion_lm(tmp_path / "missing", units)
    with pytest.raises(InputError, match="not a neural LM exp dir"):
        open_fusion_lm(tmp_path, units)


# ------------------------------------------------------------------ the command line


def test_decode_with_a_neural_lm_end_to_end(capsys, att_exp, lm_exps, stores, units, tmp_path):
    feats = str(stores["dev"])
    code, out, err = _run(capsys, "decode", str(att_exp), feats, "--device", "cpu", "--beam", "3", "--nbest", "2",
                          "--lm", str(lm_exps["transformer"]), "--lm-weight", "0.4")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(FeatureStore(stores["dev"]))
    lm = NeuralLM.load(lm_exps["transformer"])
    for r in rows:
        assert r["lm_weight"] == 0.4 and all(n["lm_weight"] == 0.4 for n in r["nbest"])
        ids = [units.id_of(u) for u in r["units"]]  # the model's units are the LM's
        assert r["lm_score"] == pytest.approx(float(lm.token_scores([ids])[0].sum()), abs=2e-3)
        assert r["score"] == pytest.approx(0.7 * r["att_score"] + 0.3 * r["ctc_score"] + 0.4 * r["lm_score"],
                                           abs=2e-3)
        n = r["nbest"][0]
        assert acoustic_score(n) == pytest.approx(n["score"] - 0.4 * n["lm_score"], abs=1e-9)
    # rescore takes the decoder's LM out with the recorded weight (no --decoder-lm-weight)
    nbest = tmp_path / "nbest.jsonl"
    nbest.write_text(out)
    code, out2, err = _run(capsys, "rescore", str(nbest), "--lm", str(lm_exps["lstm"]), "--lm-weight", "0.2",
                           "--format", "jsonl")
    assert code == 0, err
    for r, r2 in zip(rows, map(json.loads, out2.splitlines())):
        got = {n["hyp"]: n["am_score"] for n in r2["nbest"]}
        for n in r["nbest"]:
            assert got[n["hyp"]] == pytest.approx(n["score"] - 0.4 * n["lm_score"], abs=1e-3)
    code, _, err = _run(capsys, "rescore", str(nbest), "--lm", str(lm_exps["lstm"]), "--lm-weight", "0.2",
                        "--decoder-lm-weight", "0.5")
    assert code == 2 and "record the decoder's LM weight ('lm_weight': 0.4)" in err


def test_tune_grids_the_neural_lm_weight(capsys, att_exp, lm_exps, stores, tmp_path):
    exp = tmp_path / "tf"
    shutil.copytree(att_exp, exp)
    lm = str(lm_exps["lstm"])
    code, out, err = _run(capsys, "tune", str(exp), str(stores["dev"]), str(stores["dev"] / "text"), "--lm", lm,
                          "--lm-weights", "0,0.5", "--ctc-weights", "0.3", "--length-bonuses", "0", "--beam", "2",
                          "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert "LM_WEIGHT" in out and lines[-1].startswith("best: lm_weight ")
    tuned = yaml.safe_load((exp / "lm_tuning.yaml").read_text())
    assert tuned["search"] == "attention" and Path(tuned["lm"]) == Path(lm).resolve()
    assert tuned["lm_weights"] == [0.0, 0.5] and tuned["grid_size"] == 2 and tuned["lm_weight"] in (0.0, 0.5)
    code = main(["decode", str(exp), str(stores["dev"]), "--device", "cpu", "--lm", lm])  # not -q: its log lines
    err = capsys.readouterr().err
    assert code == 0 and "search weights from" in err, err


def test_a_neural_lm_on_other_units_is_one_line(capsys, att_exp, lm_exps, stores, tmp_path):
    other = tmp_path / "lm_other"
    shutil.copytree(lm_exps["lstm"], other)
    shutil.rmtree(other / "units")
    (tmp_path / "text").write_text("u1 w5 w6 w7 w8 w9\n")  # as many char units, other digits
    train_tokenizer("char", tmp_path / "text", other / "units")
    code, out, err = _run(capsys, "decode", str(att_exp), str(stores["dev"]), "--device", "cpu", "--beam", "2",
                          "--lm", str(other))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    msg = " ".join(err.split())
    assert "id 4 is '5' in the LM, '0' in the model" in msg and "units.dir=EXP/units" in msg


def test_a_neural_lm_for_a_ctc_model_is_one_line(capsys, lm_exps, stores, tmp_path):
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "config.yaml").write_text("task: ctc\n")
    for cmd in (["decode", str(ctc), str(stores["dev"])],
                ["tune", str(ctc), str(stores["dev"]), str(stores["dev"] / "text")]):
        code, out, err = _run(capsys, *cmd, "--lm", str(lm_exps["lstm"]))
        msg = " ".join(err.split())
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert "a neural LM exp dir" in msg and "rescor" in msg


def test_rescore_reads_the_recorded_lm_weight():
    entry = {"hyp": "w0", "score": -5.0, "att_score": -4.0, "lm_score": -2.0, "lm_weight": 0.5}
    assert acoustic_score(entry) == -4.0
    assert acoustic_score(entry, decoder_lm_weight=0.5) == -4.0  # the same weight: no conflict
    with pytest.raises(UsageError, match="'lm_weight': 0.5.*drop --decoder-lm-weight"):
        acoustic_score(entry, decoder_lm_weight=0.3, where="f:1")
    with pytest.raises(InputError, match="'lm_weight' is not a finite number >= 0"):
        acoustic_score({**entry, "lm_weight": -1}, where="f:1")
    with pytest.raises(UsageError, match="--decoder-lm-weight W"):  # a file without it: as before
        acoustic_score({k: v for k, v in entry.items() if k != "lm_weight"}, where="f:1")
