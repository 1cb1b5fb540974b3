"""Neural LM exp dirs (asrkit.lm.neural): loading, scoring, perplexity, generation, the CLI."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from asrkit.checkpoint import save_checkpoint
from asrkit.cli.main import main
from asrkit.data.tokenizer import Tokenizer
from asrkit.data.units import UnitMap, save_units
from asrkit.errors import InputError, UsageError
from asrkit.lm.neural import NeuralLM, generate, next_token_logprobs
from asrkit.lm.ppl import perplexity
from asrkit.models import build_model

WORDS = ["<eos>", "<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park"]
MEMO = ["the cat sat on the mat", "a dog ran in the park"]
LSTM = {"type": "lm_lstm", "embed_dim": 16, "hidden": 32, "layers": 1, "dropout": 0.0, "embed_dropout": 0.0,
        "input_dropout": 0.0, "hidden_dropout": 0.0}
TRANSFORMER = {"type": "lm_transformer", "hidden": 16, "heads": 2, "ff_mult": 2, "layers": 1, "dropout": 0.0,
               "max_len": 8}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _char_units() -> UnitMap:
    tok = Tokenizer("char", ["<blank>", "<unk>", "|", "'", *"abcdefghijklmnopqrstuvwxyz"])
    return UnitMap("char", tok.units, tok)


def _write_exp(exp: Path, model: torch.nn.Module, units: UnitMap) -> Path:
    """An LM exp dir as `asrkit train lm` leaves it: config.yaml, checkpoints/best.pt, units/."""
    (exp / "checkpoints").mkdir(parents=True)
    config = {"task": "lm", "model": dict(model.config), "units": {"kind": units.kind}}
    (exp / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    save_checkpoint({"model": model.state_dict()}, exp / "checkpoints" / "best.pt")
    save_units(units, exp / "units")
    return exp


def _exp(tmp_path: Path, cfg: dict = LSTM, units: UnitMap | None = None, seed: int = 0, name: str = "lm") -> Path:
    units = units or UnitMap("word", WORDS)
    torch.manual_seed(seed)
    model = build_model({**cfg, "num_classes": units.num_classes})
    return _write_exp(tmp_path / name, model, units)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------ loading and scoring


def test_load_rebuilds_the_model_and_its_units(tmp_path):
    lm = NeuralLM.load(_exp(tmp_path))
    assert lm.kind == "word" and lm.units.num_classes == len(WORDS) and not lm.model.training
    assert lm.sentence_ids(["the", "zebra", "<eos>", "cat"]) == [2, 1, 1, 3]  # OOVs and a literal <eos>: <unk>
    assert lm.is_oov("zebra") and lm.is_oov("<unk>") and not lm.is_oov("the")
    assert lm.ids_text([2, 3, 1]) == "the cat <unk>"


def _hand_scores(lm: NeuralLM, ids: list[int]) -> list[float]:
    """ln P of each of ``ids + [</s>]`` after ``<s>``, one step at a time."""
    state, out, prev = lm.model.init_state(1), [], 0
    with torch.no_grad():
        for tok in [*ids, 0]:
            logp, state = lm.model.step(state, torch.tensor([prev]))
            out.append(float(logp[0, tok]))
            prev = tok
    return out


@pytest.mark.parametrize("cfg", [LSTM, TRANSFORMER], ids=["lstm", "transformer"])
def test_sentence_scores_are_batched_sums_of_step_log_probs(tmp_path, cfg):
    lm = NeuralLM.load(_exp(tmp_path, cfg))
    sents = [["the", "cat"], [], ["a", "dog", "ran", "in", "the", "park"], ["zebra", "sat"]]
    scores = lm.sentence_scores(sents)
    for words, got in zip(sents, scores):
        assert got == pytest.approx(sum(_hand_scores(lm, lm.sentence_ids(words))), abs=1e-4)
    assert scores[0] == pytest.approx(lm.sentence_scores([sents[0]])[0], abs=1e-5)  # batch = alone


def test_a_sentence_longer_than_the_transformer_context_is_scored_in_windows(tmp_path):
    lm = NeuralLM.load(_exp(tmp_path, TRANSFORMER))  # max_len 8: windows [0, 8), [4, 12), [8, 15)
    words = "the cat sat on the mat a dog ran in the park the cat".split()
    got = lm.token_scores([lm.sentence_ids(words)])[0]
    row = torch.tensor([0, *lm.sentence_ids(words), 0])
    inputs, targets = row[:-1], row[1:]  # 15 positions
    assert got.shape == (15,)
    hand = _hand_scores(lm, lm.sentence_ids(words))
    assert got[:8].tolist() == pytest.approx(hand[:8], abs=1e-4)  # the first window: whole prefixes
    with torch.no_grad():
        for pos in range(8, 15):
            start = 4 if pos < 12 else 8  # each later window keeps 4 tokens of context before its new part
            logp = torch.log_softmax(lm.model(inputs[None, start:pos + 1])[0, -1], -1)
            assert float(got[pos]) == pytest.approx(float(logp[targets[pos]]), abs=1e-4), pos


def test_next_token_logprobs_is_the_step_distribution(tmp_path):
    lm = NeuralLM.load(_exp(tmp_path))
    lp = next_token_logprobs(lm, [2, 3])
    assert lp.shape == (len(WORDS),) and lp.dtype == torch.float32
    assert float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(lp[4]) == pytest.approx(_hand_scores(lm, [2, 3, 4])[2], abs=1e-5)
    assert float(next_token_logprobs(lm.model, [])[2]) == pytest.approx(_hand_scores(lm, [2])[0], abs=1e-5)


# ------------------------------------------------------------------ perplexity


def test_ppl_of_a_word_lm_counts_as_the_ngram_does(tmp_path, capsys):
    exp = _exp(tmp_path)
    lines = ["the cat sat", "a zebra ran in the park", "the dog"]
    text = _write(tmp_path / "test.txt", lines)
    lm = NeuralLM.load(exp)
    lp = lp_oov = 0.0
    n = 0
    for line in lines:
        words = line.split()
        scores = _hand_scores(lm, lm.sentence_ids(words))
        for w, s in zip([*words, "</s>"], scores):
            lp_oov += s
            if w != "zebra":
                lp += s
                n += 1
    r = perplexity(exp, text)
    assert (r.sentences, r.words, r.oovs) == (3, 11, 1)
    assert r.logprob == pytest.approx(lp / math.log(10), abs=1e-4)
    assert r.logprob_with_oov == pytest.approx(lp_oov / math.log(10), abs=1e-4)
    assert n == 11 - 1 + 3
    assert r.perplexity == pytest.approx(math.exp(-lp / n), rel=1e-4)
    assert r.perplexity_with_oov == pytest.approx(math.exp(-lp_oov / 14), rel=1e-4)
    # the CLI prints the same report
    capsys.readouterr()
    assert main(["lm", "ppl", str(exp), str(text), "--device", "cpu"]) == 0
    out = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert int(out["oovs"]) == 1 and float(out["perplexity"]) == pytest.approx(r.perplexity, rel=1e-4)


def test_ppl_of_a_char_lm_has_no_oovs_and_is_per_word(tmp_path):
    units = _char_units()
    exp = _exp(tmp_path, units=units)
    lines = ["the cat", "zebra"]
    lm = NeuralLM.load(exp)
    assert lm.kind == "char" and lm.sentence_ids(["ab", "c"]) == [4, 5, 2, 6]
    total = sum(sum(_hand_scores(lm, lm.sentence_ids(line.split()))) for line in lines)
    r = perplexity(exp, _write(tmp_path / "t.txt", lines))
    assert (r.sentences, r.words, r.oovs) == (2, 3, 0)
    assert r.perplexity == pytest.approx(math.exp(-total / (3 + 2)), rel=1e-4)
    assert r.perplexity == pytest.approx(r.perplexity_with_oov)


# ------------------------------------------------------------------ generation


def _memorized(tmp_path: Path, cfg: dict = LSTM) -> Path:
    """A word LM trained (plain loop, a few seconds) on MEMO until it knows it by heart."""
    units = UnitMap("word", WORDS)
    torch.manual_seed(0)
    model = build_model({**cfg, "num_classes": len(WORDS)})
    # one row per sentence, each from an empty history as generation starts: 0 w_1 .. w_n 0
    rows = [[0, *(WORDS.index(w) for w in line.split()), 0] for line in MEMO]
    L = max(map(len, rows))
    x = torch.tensor([r + [0] * (L - len(r)) for r in rows])
    y = torch.tensor([r[1:] + [-100] * (L - len(r)) for r in rows])  # padding: ignored
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).transpose(1, 2), y)
        loss.backward()
        opt.step()
    floor = len(rows) * math.log(2) / int((y >= 0).sum())  # each first word is a coin flip, the rest determined
    assert loss.item() < floor + 0.01
    return _write_exp(tmp_path / "memo", model.eval(), units)


def test_greedy_and_beam_regenerate_a_memorized_text(tmp_path, capsys):
    exp = _memorized(tmp_path)
    lm = NeuralLM.load(exp)
    assert generate(lm, "the", temperature=0) == [MEMO[0]]
    assert generate(lm, "a", temperature=0, num=2) == [MEMO[1]] * 2
    assert generate(lm, "a dog", beam=3)[0] == MEMO[1]
    assert generate(lm, "the cat", top_k=1, seed=5) == [MEMO[0]]  # top-1 sampling is greedy
    assert generate(lm, "the cat", top_p=1e-6, seed=5) == [MEMO[0]]  # so is a tiny nucleus
    assert generate(lm, "the", temperature=0, max_len=2) == ["the cat sat"]
    capsys.readouterr()
    assert main(["lm", "generate", str(exp), "--prompt", "the", "--temperature", "0", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == MEMO[0] + "\n"


def test_sampling_is_deterministic_with_a_seed(tmp_path, capsys):
    exp = _exp(tmp_path, TRANSFORMER, seed=3)  # untrained: close to uniform, so draws differ by seed

    def run(*args):
        capsys.readouterr()
        assert main(["lm", "generate", str(exp), "--num", "4", "--max-len", "12", "--device", "cpu", *args]) == 0
        return capsys.readouterr().out.splitlines()

    a, b, c = run("--seed", "7"), run("--seed", "7"), run("--seed", "8")
    assert a == b and len(a) == 4 and a != c
    assert all(len(line.split()) <= 12 for line in a)
    assert run("--seed", "7", "--top-k", "3", "--top-p", "0.8") == run("--seed", "7", "--top-k", "3", "--top-p", "0.8")
    beams = run("--beam", "4", "--prompt", "the cat")
    assert len(beams) == 4 and all(line.startswith("the cat") for line in beams)


def test_beam_lines_are_sorted_by_score(tmp_path):
    lm = NeuralLM.load(_exp(tmp_path, seed=1))
    lines = generate(lm, "the", beam=5, num=5, max_len=4)
    assert len(lines) == 5 and len(set(lines)) == 5
    scores = []
    for line in lines:
        tokens = lm.token_scores([lm.sentence_ids(line.split())])[0]
        cut = len(line.split()) == 1 + 4  # reached max_len: ends there, without </s>
        scores.append(float(tokens[:-1].sum() if cut else tokens.sum()))
    assert scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------ errors


def _error(capsys, args: list[str], code: int, *needles: str) -> None:
    capsys.readouterr()
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("args, needle", [
    (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--top-p", "-0.1"], "--top-p"),
    (["--temperature", "-1"], "--temperature"), (["--top-k", "-2"], "--top-k"),
    (["--num", "0"], "--num"), (["--max-len", "0"], "--max-len"), (["--beam", "2", "--num", "3"], "--beam 2"),
])
def test_bad_generate_options_are_one_line_exit_2(tmp_path, capsys, args, needle):
    _error(capsys, ["lm", "generate", str(tmp_path / "whatever"), *args], 2, needle)


def test_a_prompt_of_unknown_words_is_one_line(tmp_path, capsys):
    exp = _exp(tmp_path)
    _error(capsys, ["lm", "generate", str(exp), "--prompt", "zebra quux", "--device", "cpu"], 2, "zebra quux",
           "vocabulary")
    with pytest.raises(UsageError):
        generate(NeuralLM.load(exp), "zebra")
    assert generate(NeuralLM.load(exp), "zebra the", max_len=3)[0].startswith("<unk> the")  # one known word: fine


def test_not_an_lm_exp_dir_is_one_line(tmp_path, capsys):
    text = _write(tmp_path / "t.txt", ["the cat"])
    plain = tmp_path / "plain"
    plain.mkdir()
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "config.yaml").write_text(yaml.safe_dump({"task": "ctc", "model": {"type": "ctc"}}), encoding="utf-8")
    for path, needle in ((plain, "no config.yaml"), (ctc, "model.type is 'ctc'"), (tmp_path / "none", "no such")):
        _error(capsys, ["lm", "generate", str(path), "--device", "cpu"], 1, "not a neural LM exp dir", needle)
        with pytest.raises(InputError, match="not a neural LM exp dir"):
            NeuralLM.load(path)
    _error(capsys, ["lm", "ppl", str(ctc), str(text), "--device", "cpu"], 1, "not a neural LM exp dir")
    _error(capsys, ["lm", "generate", str(text), "--device", "cpu"], 1, "not a directory")
    exp = _exp(tmp_path)
    (exp / "checkpoints" / "best.pt").unlink()
    _error(capsys, ["lm", "generate", str(exp), "--device", "cpu"], 1, "best.pt: no such checkpoint")
