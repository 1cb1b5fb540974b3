"""``asrkit train lm``: the token blocks and their batches (deterministic, resumable,
split between processes), the word vocabulary, the text reader's errors, dev
perplexity, and tiny end-to-end runs through the CLI (resume = an unbroken run)."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
import yaml

from asrkit.cli.main import main
from asrkit.data.text_blocks import (
    BlockBatchPlan,
    Sentences,
    TextBlocks,
    block_bounds,
    collate_blocks,
    join_sentences,
)
from asrkit.errors import ConfigError, DataError, InputError
from asrkit.tasks.lm import LMText, encode_sentences, read_lm_text, word_units
from asrkit.train import check_config, load_config, train

#: fast settings, and a tiny model of each type
SMALL = ["model.embed_dim=16", "model.hidden=16", "model.layers=1", "data.bptt=12", "data.batch_blocks=6",
         "train.epochs=2", "train.threads=1", "train.log_every=1", "optim.lr=1e-2", "optim.warmup_steps=2",
         "train.tensorboard=false"]
TRANSFORMER = ["model.type=lm_transformer", "model.hidden=16", "model.heads=2", "model.layers=1"]


def _small(*extra: str) -> list[str]:
    """SMALL with ``extra`` after it (a Transformer has no embed_dim)."""
    base = [o for o in SMALL if not (o.startswith("model.") and "model.type=lm_transformer" in extra)]
    return [*base, *extra]


def _sentences(n: int, seed: int) -> list[str]:
    """Sentences of a tiny grammar (subject verb object), so that a small model learns something."""
    rng = random.Random(seed)
    subj, verb, obj = ["the cat", "a dog", "the man", "my friend"], ["sees", "likes", "eats", "wants"], \
        ["the fish", "a ball", "some bread", "the red hat", "an apple"]
    return [f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)}" + (" today" if rng.random() < 0.3 else "")
            for _ in range(n)]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmtext")
    (d / "train.txt").write_text("\n".join(_sentences(300, 1)) + "\n")
    (d / "dev.txt").write_text("\n".join(_sentences(40, 2)) + "\n")
    return d / "train.txt", d / "dev.txt"


def _events(exp, kind):
    return [e for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines()) if e["event"] == kind]


# ------------------------------------------------------------------ blocks and batches
def test_stream_and_fixed_blocks_tile_it():
    stream = join_sentences([[5, 6, 7], [8], [9, 10]])
    assert stream.tolist() == [0, 5, 6, 7, 0, 8, 0, 9, 10, 0]
    b = block_bounds(len(stream), 4)
    assert b.tolist() == [0, 4, 8, 9]  # inputs 0..8, the last block shorter
    blocks = TextBlocks(stream, bptt=4)
    items = [blocks[i] for i in range(len(blocks))]
    assert [it.tokens.tolist() for it in items] == [[0, 5, 6, 7, 0], [0, 8, 0, 9, 10], [10, 0]]
    batch = collate_blocks(items)
    assert batch.inputs.tolist() == [[0, 5, 6, 7], [0, 8, 0, 9], [10, 0, 0, 0]]
    assert batch.targets.tolist() == [[5, 6, 7, 0], [8, 0, 9, 10], [0, -100, -100, -100]]
    assert batch.lengths.tolist() == [4, 4, 1] and batch.num_tokens == 9 == len(stream) - 1
    assert batch.utts == ["block-0", "block-1", "block-2"]


def test_variable_lengths_are_seeded_by_epoch_and_bounded():
    n, bptt = 5000, 20
    a = block_bounds(n, bptt, variable=True, seed=3, epoch=1)
    assert a.tolist() == block_bounds(n, bptt, variable=True, seed=3, epoch=1).tolist()
    assert a.tolist() != block_bounds(n, bptt, variable=True, seed=3, epoch=2).tolist()
    assert a.tolist() != block_bounds(n, bptt, variable=True, seed=4, epoch=1).tolist()
    lengths = np.diff(a)
    assert a[0] == 0 and a[-1] == n - 1 and lengths.sum() == n - 1
    assert lengths[:-1].min() >= 5 and lengths.max() <= bptt + 10
    assert (lengths < 15).mean() > 0.02 and abs(np.median(lengths) - bptt) <= 2  # mostly bptt, sometimes bptt/2
    blocks = TextBlocks(np.arange(n) % 7, bptt, variable=True, seed=3)
    blocks.set_epoch(1)
    assert len(blocks) == len(a) - 1 and blocks[3].tokens.tolist() == (np.arange(a[3], a[4] + 1) % 7).tolist()


def test_batch_plan_is_deterministic_resumable_and_split_between_ranks():
    blocks = TextBlocks(np.arange(1000) % 11, bptt=7)  # 143 blocks, the last of 5 targets
    plan = BlockBatchPlan(blocks, batch_blocks=8, seed=2)
    plan.set_epoch(4)
    full = list(plan)
    assert len(plan) == len(full) == math.ceil(143 / 8)
    assert sorted(i for idx, _ in full for i in idx) == list(range(143))  # each block once per epoch
    assert sum(norm for _, norm in full) == 999  # every target once
    again = BlockBatchPlan(blocks, 8, seed=2)
    again.set_epoch(4)
    assert list(again) == full
    again.set_epoch(4, start=5)  # a resumed epoch: the same batches from number 5 on
    assert list(again) == full[5:]
    again.set_epoch(5)
    assert list(again) != full
    ordered = BlockBatchPlan(blocks, 8, shuffle=False)
    assert next(iter(ordered))[0] == list(range(8))
    # two processes: each takes every other block of every global batch; the normalizer is the global one
    ranks = [BlockBatchPlan(blocks, 8, seed=2, rank=r, world_size=2) for r in range(2)]
    for r in ranks:
        r.set_epoch(4)
    for (i0, n0), (i1, n1), (g, n) in zip(*ranks, full):
        assert sorted(i0 + i1) == sorted(g) and n0 == n1 == n and i0 and i1
    # 143 blocks = 17 x 8 + 7: the 7 left over are a batch of their own for 4 processes, ...
    assert len(BlockBatchPlan(blocks, 8, world_size=4)) == 18
    # ... but a last global batch of fewer blocks than processes joins the one before it
    seven = TextBlocks(np.arange(50), bptt=7)  # 49 inputs: 7 blocks = 6 + 1
    two = [BlockBatchPlan(seven, 6, rank=r, world_size=2) for r in range(2)]
    assert [len(p) for p in two] == [1, 1] and len(two[0].global_batches()[0]) == 7
    assert sorted(i for p in two for idx, _ in p for i in idx) == list(range(7))
    with pytest.raises(ValueError, match="batch_blocks"):
        BlockBatchPlan(blocks, 2, world_size=3)


def test_dev_sentences_and_their_pieces():
    s = Sentences([[4, 5, 6], [7]], ["u1", "u2"])
    assert [s[i].tokens.tolist() for i in range(len(s))] == [[0, 4, 5, 6, 0], [0, 7, 0]]
    assert s.lengths == [4, 2] and s.num_sentences == 2
    # 6 inputs, max_len 4: windows of 4 overlapping by 2; the second scores only its last 2 targets
    cut = Sentences([[4, 5, 6, 7, 8]], ["u1"], max_len=4)
    assert [(cut[i].tokens.tolist(), cut[i].skip) for i in range(len(cut))] == [([0, 4, 5, 6, 7], 0),
                                                                                 ([5, 6, 7, 8, 0], 2)]
    b = collate_blocks([cut[0], cut[1]])
    assert b.targets.tolist() == [[4, 5, 6, 7], [-100, -100, 8, 0]] and b.num_tokens == 6
    assert cut.utts == ["u1", "u1"] and cut.num_sentences == 1


# ------------------------------------------------------------------ units and text
def test_word_units_order_cap_and_unk():
    text = LMText("t", [["b", "a", "c", "b"], ["c", "d", "b", "<unk>"], ["e"]], ["1", "2", "3"], "plain")
    # counts: b 3, c 2, then a d e once each (alphabetical); the literal <unk> is no word of the vocabulary
    assert word_units(text, 100) == ["<eos>", "<unk>", "b", "c", "a", "d", "e"]
    assert word_units(text, 4) == ["<eos>", "<unk>", "b", "c"]
    from asrkit.data.units import UnitMap

    units = UnitMap("word", word_units(text, 4))
    assert encode_sentences(text, units) == [[2, 1, 3, 2], [3, 1, 2, 1], [1]]


def test_reading_text_formats_and_bad_files(tmp_path):
    kaldi = tmp_path / "text"
    kaldi.write_text("utt-1 the cat\nutt-2 a dog runs\n")
    t = read_lm_text(kaldi, "kaldi")
    assert t.sentences == [["the", "cat"], ["a", "dog", "runs"]] and t.names == ["utt-1", "utt-2"]
    assert read_lm_text(kaldi, "auto").sentences == t.sentences
    plain = read_lm_text(kaldi, "plain")  # the ids are words (training warns, saying what to do)
    assert plain.sentences[0] == ["utt-1", "the", "cat"] and plain.format == "plain" and plain.ids_as_words
    assert not t.ids_as_words
    ok = tmp_path / "ok.txt"
    ok.write_text("\ufeffthe cat\n\n  \na dog\n")  # byte-order mark and blank lines
    assert read_lm_text(ok).sentences == [["the", "cat"], ["a", "dog"]] and not read_lm_text(ok).ids_as_words
    empty = tmp_path / "empty.txt"
    for content in (b"", b"\n  \n\n"):
        empty.write_bytes(content)
        with pytest.raises(InputError, match="the training text is empty"):
            read_lm_text(empty, what="training text")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x08\x08\xff\xfe\x00\x93abc\n")
    with pytest.raises(InputError, match="invalid UTF-8.*not a UTF-8 text file"):
        read_lm_text(binary)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"abc\x00\x00def ghi\n")
    with pytest.raises(InputError, match="NUL bytes"):
        read_lm_text(nul)
    with pytest.raises(InputError, match="is a folder"):
        read_lm_text(tmp_path)


def test_config_rules():
    check_config(load_config("lm"))
    with pytest.raises(ConfigError, match="units.vocab_size"):
        load_config("lm", None, ["units.vocab_size=2"])
    with pytest.raises(ConfigError, match="data.bptt"):
        load_config("lm", None, ["data.bptt=0"])
    with pytest.raises(ConfigError, match="data.text_format"):
        load_config("lm", None, ["data.text_format=csv"])
    with pytest.raises(ConfigError, match="units.kind"):
        load_config("lm", None, ["units.kind=phone"])
    with pytest.raises(ConfigError, match="max_len"):
        check_config(load_config("lm", None, ["model.type=lm_transformer", "model.max_len=32", "data.bptt=30",
                                              "data.variable_bptt=true"]))
    # the LM's own keys are in its configs only
    with pytest.raises(ConfigError, match="unknown config key 'data.bptt'"):
        load_config("ctc", None, ["data.bptt=35"])
    assert "bptt" not in load_config("ctc")["data"]


# ------------------------------------------------------------------ training
def test_train_lm_cli_end_to_end(texts, tmp_path, capsys):
    exp = tmp_path / "exp"
    train_txt, dev_txt = texts
    args = ["-q", "train", "lm", "--text", str(train_txt), "--dev", str(dev_txt), "--out", str(exp), *SMALL,
            "train.epochs=5"]
    assert main(args) == 0
    assert capsys.readouterr().out == ""
    units = (exp / "units" / "units.txt").read_text().split("\n")
    assert units[:2] == ["<eos> 0", "<unk> 1"] and len(units) - 1 == 2 + 20  # the grammar's 20 words
    cfg = (exp / "config.yaml").read_text()
    assert cfg.startswith("task: lm\n") and "bptt: 12" in cfg and "input_dim" not in cfg
    dev = _events(exp, "dev")
    assert len(dev) == 5 and dev[-1]["dev_loss"] < dev[0]["dev_loss"]
    for e in dev:  # word units: the token and word perplexities are one number
        assert e["dev_ppl"] == pytest.approx(math.exp(e["dev_loss"]), rel=1e-4)
        assert e["dev_word_ppl"] == pytest.approx(e["dev_ppl"], rel=1e-4) and e["dev_oov"] == 0.0
        assert e["tokens_per_s"] > 0 and "frames_per_s" not in e
    assert dev[-1]["dev_ppl"] < 9  # of 22 units: it learned the grammar's few choices per word
    train_ev = _events(exp, "train")
    assert all(e["tokens"] > 0 for e in train_ev) and train_ev[-1]["loss"] < train_ev[0]["loss"]
    ck = torch.load(exp / "checkpoints" / "best.pt", weights_only=True)
    assert ck["metric"] == "ppl" and ck["best"] == pytest.approx(min(e["dev_ppl"] for e in dev), rel=1e-5)
    assert "tokens/s" in (exp / "train.log").read_text()
    # averaging works as for every task
    assert main(["-q", "average", str(exp), "--last", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "checkpoints" / "avg-last-2.pt")


def test_train_lm_with_an_adaptive_softmax_then_ppl_and_generate(texts, tmp_path, capsys):
    """model.adaptive_cutoffs: the output layer is an adaptive softmax; it learns as the full one
    does, and its exp dir is scored and generates from as any LM's."""
    exp = tmp_path / "exp"
    train_txt, dev_txt = texts
    over = [*SMALL, "train.epochs=5", "model.tie_weights=false", "model.adaptive_cutoffs=[6,14]",
            "model.adaptive_div=2"]
    assert main(["-q", "train", "lm", "--text", str(train_txt), "--dev", str(dev_txt), "--out", str(exp), *over]) == 0
    assert capsys.readouterr().out == ""
    cfg = yaml.safe_load((exp / "config.yaml").read_text())["model"]
    assert cfg["adaptive_cutoffs"] == [6, 14] and cfg["adaptive_div"] == 2.0 and cfg["num_classes"] == 22
    dev = _events(exp, "dev")
    assert len(dev) == 5 and dev[-1]["dev_loss"] < dev[0]["dev_loss"] and dev[-1]["dev_ppl"] < 9
    ck = torch.load(exp / "checkpoints" / "best.pt", weights_only=True)
    assert "adaptive.tail.1.1.weight" in ck["model"] and "output.weight" not in ck["model"]
    # asrkit lm ppl: the best checkpoint's dev perplexity, as the trainer measured it
    assert main(["lm", "ppl", str(exp), str(dev_txt), "--device", "cpu"]) == 0
    out = dict(line.split() for line in capsys.readouterr().out.strip().splitlines())
    assert int(out["oovs"]) == 0
    assert float(out["perplexity"]) == pytest.approx(min(e["dev_word_ppl"] for e in dev), rel=1e-3)
    # asrkit lm generate: sampled and beam lines of the grammar's words
    words = set(train_txt.read_text().split())
    for extra in (["--num", "3", "--seed", "1"], ["--beam", "3", "--num", "2"], ["--temperature", "0"]):
        assert main(["lm", "generate", str(exp), "--prompt", "the cat", "--max-len", "8", "--device", "cpu",
                     *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines and all(line.startswith("the cat") and set(line.split()) <= words for line in lines), lines
    # the same exp dir on torch's layers (torch.nn.AdaptiveLogSoftmaxWithLoss): the same perplexity
    from asrkit.lm.neural import NeuralLM
    from asrkit.lm.ppl import perplexity

    native = perplexity(exp, dev_txt, model=NeuralLM.load(exp, impl="native"))
    assert native.perplexity == pytest.approx(float(out["perplexity"]), rel=1e-4)


def test_dev_loss_is_the_sentences_scored_token_by_token(texts, tmp_path):
    """The dev metrics score every sentence from an empty history as ``step`` does
    (0 w1 .. wn predicting w1 .. wn 0); word_ppl divides by words + sentences."""
    from asrkit.data.units import load_units
    from asrkit.models import load_model

    train_txt, dev_txt = texts
    exp = tmp_path / "exp"
    train(load_config("lm", None, [*SMALL, "units.kind=char", "train.epochs=1"]), train_txt, dev_txt, exp)
    ev = _events(exp, "dev")[-1]
    model, _ = load_model(exp, "last")
    units = load_units(exp, {"units": {"kind": "char"}})
    dev = read_lm_text(dev_txt)
    nll = tokens = 0.0
    with torch.no_grad():
        for words in dev.sentences:
            ids = [*units.tokenizer.encode(words), 0]
            state = model.init_state(1, "cpu")
            prev = 0
            for i in ids:
                logp, state = model.step(state, torch.tensor([prev]))
                nll -= float(logp[0, i])
                prev = i
            tokens += len(ids)
    assert ev["dev_loss"] == pytest.approx(nll / tokens, rel=1e-4)
    assert ev["dev_word_ppl"] == pytest.approx(math.exp(nll / (dev.words + len(dev.sentences))), rel=1e-4)
    assert ev["dev_ppl"] < ev["dev_word_ppl"] and "dev_oov" not in ev  # several chars per word


class _Kill(Exception):
    pass


@pytest.mark.parametrize("extra", [[], [*TRANSFORMER, "data.variable_bptt=true", "units.kind=bpe",
                                        "units.vocab_size=30"]], ids=["lstm-word", "transformer-bpe-variable"])
def test_resume_mid_epoch_equals_an_unbroken_run(texts, tmp_path, extra):
    train_txt, dev_txt = texts
    over = _small(*extra, "train.save_every_steps=1", "train.epochs=3")
    cfg = load_config("lm", None, over)
    full = tmp_path / "full"
    train(cfg, train_txt, dev_txt, full)
    per_epoch = torch.load(full / "checkpoints" / "epoch-1.pt", weights_only=True)["step"]

    def kill(step, epoch, position):
        if step == per_epoch + 3:
            raise _Kill

    cut = tmp_path / "cut"
    with pytest.raises(_Kill):
        train(cfg, train_txt, dev_txt, cut, hooks={"after_step": kill})
    train(load_config("lm", None, over), train_txt, dev_txt, cut, resume=True)
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(cut / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] and a["step"] > per_epoch + 3
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])

    def logged(exp):
        return [{k: v for k, v in e.items() if k not in ("tokens_per_s", "seconds", "epoch_s")}
                for e in map(json.loads, (exp / "metrics.jsonl").read_text().splitlines())]

    assert logged(full) == logged(cut)


def test_bad_input_is_one_line(texts, tmp_path, capsys):
    train_txt, dev_txt = texts

    def run(text, dev, *extra):
        code = main(["-q", "train", "lm", "--text", str(text), "--dev", str(dev), "--out", str(tmp_path / "exp"),
                     "--overwrite", *SMALL, *extra])
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return code, " ".join(err.split())

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code, err = run(empty, dev_txt)
    assert code == 1 and "empty.txt: the training text is empty" in err
    binary = tmp_path / "weights.pt"
    binary.write_bytes(bytes(range(256)) * 4)
    code, err = run(train_txt, binary)
    assert code == 1 and "weights.pt" in err and "not a UTF-8 text file" in err
    other = tmp_path / "other.txt"
    other.write_text("zwei drei vier\nfünf sechs\n")
    code, err = run(train_txt, other)
    assert code == 1 and "other.txt: none of the dev text's 5 words is in the vocabulary" in err
    # a feature store is not a text
    code, err = run(tmp_path, dev_txt)
    assert code == 1 and "is a folder" in err
    # --train is the option of the feature-store tasks; the LM takes --text
    code = main(["-q", "train", "lm", "--train", str(train_txt), "--dev", str(dev_txt), "--out", str(tmp_path / "x")])
    assert code == 2 and "No such option: --train" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_processes_equal_one(texts, tmp_path):
    train_txt, dev_txt = texts
    cfg = load_config("lm", None, [*SMALL, "train.max_steps=3", "model.dropout=0.0", "model.embed_dropout=0.0",
                                   "model.input_dropout=0.0", "model.hidden_dropout=0.0", "optim.warmup_steps=0"])
    train(cfg, train_txt, dev_txt, tmp_path / "one")
    train(cfg, train_txt, dev_txt, tmp_path / "two", nproc=2)
    a = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 3
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, atol=1e-5, rtol=0)


def test_kaldi_text_trains_as_the_same_sentences(texts, tmp_path, capsys):
    """data.text_format=kaldi drops the utt-ids: the run is the plain text's; read as
    plain, the ids would be words, and training warns."""
    train_txt, dev_txt = texts
    for name, src in (("train", train_txt), ("dev", dev_txt)):
        lines = src.read_text().splitlines()
        (tmp_path / f"{name}.kaldi").write_text("".join(f"utt-{k:04d} {ln}\n" for k, ln in enumerate(lines)))
    over = [*SMALL, "train.epochs=1"]

    def run(out, text, dev, *extra):
        assert main(["-q", "train", "lm", "--text", str(text), "--dev", str(dev), "--out", str(tmp_path / out),
                     *over, *extra]) == 0
        return [{k: v for k, v in e.items() if k not in ("tokens_per_s", "seconds", "epoch_s")}
                for e in map(json.loads, (tmp_path / out / "metrics.jsonl").read_text().splitlines())]

    plain = run("plain", train_txt, dev_txt)
    assert run("kaldi", tmp_path / "train.kaldi", tmp_path / "dev.kaldi", "data.text_format=kaldi") == plain
    assert (tmp_path / "kaldi" / "units" / "units.txt").read_text() == \
        (tmp_path / "plain" / "units" / "units.txt").read_text()
    capsys.readouterr()
    run("ids", tmp_path / "train.kaldi", tmp_path / "dev.kaldi", "train.max_steps=1")
    err = " ".join(capsys.readouterr().err.split())
    assert "train.kaldi: the first word of every line looks like an utterance id" in err
    assert "data.text_format=kaldi" in err
    assert "utt-0000" in (tmp_path / "ids" / "units" / "units.txt").read_text()


def test_dev_word_ppl_is_what_lm_ppl_reports(texts, tmp_path):
    """A char Transformer whose max_len is shorter than the dev sentences: its
    last dev word_ppl is the perplexity ``asrkit lm ppl`` reports for the dev
    text (the same windows past max_len), its loss the per-token one."""
    from asrkit.lm.neural import NeuralLM
    from asrkit.lm.ppl import perplexity

    train_txt, dev_txt = texts
    exp = tmp_path / "exp"
    over = _small(*TRANSFORMER, "model.max_len=16", "units.kind=char", "train.epochs=1")
    train(load_config("lm", None, over), train_txt, dev_txt, exp)
    ev = _events(exp, "dev")[-1]
    dev = read_lm_text(dev_txt)
    lm = NeuralLM.load(exp, "last")
    ids = [lm.sentence_ids(s) for s in dev.sentences]
    assert max(len(i) for i in ids) + 1 > 2 * 16  # several windows
    nll = -sum(lm.sentence_scores(dev.sentences))
    assert ev["dev_loss"] == pytest.approx(nll / sum(len(i) + 1 for i in ids), rel=1e-4)
    assert ev["dev_word_ppl"] == pytest.approx(perplexity(exp, dev_txt).perplexity, rel=1e-4)
