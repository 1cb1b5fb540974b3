"""Every decode backend on a small *trained* model: a BiLSTM-CTC memorises a
handful of utterances (phone, char and bpe units), then `asrkit decode`
greedy, plain beam, flashlight + LM and pyctcdecode + LM, `asrkit tune` and
`asrkit align` run on its exp dir and give the transcripts back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asrkit.cli.main import main
from asrkit.data.feature_store import ShardWriter, merge_shards
from asrkit.data.table import write_table
from asrkit.lm import build_lm

from decode_util import DIM, PHONE_WORDS

TEXT = {"s0-u0": "a cat sat", "s0-u1": "the mat", "s1-u2": "a cat on the mat", "s1-u3": "the cat sat on a mat"}
LEX = dict(PHONE_WORDS, the=["dh", "ah"])
LM_TEXT = "".join(t + "\n" for t in TEXT.values()) * 3 + "a mat sat\nthe cat\n"


def _store(path: Path) -> Path:
    """Features: a noisy random 'template' per word, 6 frames per letter, 4 silent frames between words."""
    rng = np.random.default_rng(0)
    templates = {w: rng.standard_normal((6 * len(w), DIM)).astype(np.float32) * 2 for w in LEX}
    with ShardWriter(path, 0) as wr:
        for utt, text in TEXT.items():
            parts = [np.zeros((4, DIM), np.float32)]
            for w in text.split():
                parts += [templates[w] + 0.1 * rng.standard_normal(templates[w].shape).astype(np.float32),
                          np.zeros((4, DIM), np.float32)]
            wr.add(utt, utt.split("-")[0], np.concatenate(parts))
    merge_shards(path, 1)
    write_table(path / "text", TEXT)
    write_table(path / "utt2spk", {u: u.split("-")[0] for u in TEXT})
    return path


def _trained_exp(path: Path, kind: str, store: Path) -> Path:
    """An exp dir like `asrkit train ctc` writes, its model trained (Adam) until greedy decoding is exact,
    then 200 steps more (a CTC model's outputs become peaky: one-frame spikes between blanks)."""
    from asrkit.data import FeatureStore
    from asrkit.data.tokenizer import Tokenizer, train_tokenizer
    from asrkit.models import build_model
    from asrkit.nn import CTCLoss
    from asrkit.nn.search import ctc_greedy
    from asrkit.train.config import defaults, save_config

    path.mkdir(parents=True)
    (path / "text").write_text("".join(f"{u} {t}\n" for u, t in TEXT.items()))
    if kind == "phone":
        (path / "lexicon.txt").write_text("".join(f"{w} {' '.join(p)}\n" for w, p in LEX.items()))
        train_tokenizer("phone", path / "text", path / "units", lexicons=[path / "lexicon.txt"], cmudict=False)
    else:
        train_tokenizer(kind, path / "text", path / "units", vocab_size=15 if kind == "bpe" else None)
    tok = Tokenizer.load(path / "units")
    cfg = defaults("ctc")
    cfg["units"]["kind"] = kind
    cfg["data"]["cmvn"] = None
    cfg["model"] = {"type": "ctc", "impl": "native", "input_dim": DIM, "num_classes": tok.vocab_size,
                    "subsampling": 2, "encoder": "lstm", "hidden": 32, "layers": 1, "dropout": 0.0,
                    "conv_channels": 4}
    torch.manual_seed(0)
    model = build_model(cfg["model"])
    fs = FeatureStore(store)
    utts = sorted(TEXT)
    xs = [torch.from_numpy(np.array(fs[u])) for u in utts]
    lengths = torch.tensor([x.shape[0] for x in xs])
    feats = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    targets = [tok.encode(TEXT[u].split()) for u in utts]
    flat = torch.tensor([i for t in targets for i in t])
    tlen = torch.tensor([len(t) for t in targets])
    loss_fn = CTCLoss(zero_infinity=True, impl="native")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    exact_at = None
    for step in range(1, 1201):
        model.train()
        logits, out_len = model(feats, lengths)
        loss = loss_fn(logits.log_softmax(-1).transpose(0, 1), flat, out_len, tlen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            model.eval()
            with torch.no_grad():
                logits, out_len = model(feats, lengths)
            if ctc_greedy(logits.log_softmax(-1), out_len)[0] == targets:
                exact_at = exact_at or step
            if exact_at is not None and step >= exact_at + 200:  # train on: CTC outputs become peaky
                break
    else:
        raise AssertionError(f"the {kind} model did not learn the utterances (loss {float(loss):.3f})")
    model.eval()
    cfg["model"] = dict(model.config)
    save_config(cfg, path / "config.yaml")
    (path / "checkpoints").mkdir()
    torch.save({"model": model.state_dict(), "epoch": 1}, path / "checkpoints" / "best.pt")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    store = _store(d / "feats")
    (d / "lm.txt").write_text(LM_TEXT)
    build_lm(d / "lm.txt", d / "lm.arpa", 3, progress=False)
    return d, store, d / "lm.arpa"


def _decode(capsys, exp: Path, store: Path, *extra: str) -> dict[str, str]:
    code = main(["-q", "decode", str(exp), str(store), "--device", "cpu", *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return {line.split(" ", 1)[0]: line.partition(" ")[2] for line in cap.out.splitlines()}


@pytest.mark.parametrize("kind", ["phone", "char", "bpe"])
def test_every_backend_on_a_trained_model(capsys, setup, kind, tmp_path):
    d, store, lm = setup
    exp = _trained_exp(tmp_path / kind, kind, store)
    greedy = _decode(capsys, exp, store)
    if kind == "phone":
        spelled = {u: " ".join(p for w in t.split() for p in LEX[w]) for u, t in TEXT.items()}
        assert greedy == spelled
    else:
        assert greedy == TEXT
    assert _decode(capsys, exp, store, "--beam", "4") == greedy  # plain prefix beam
    weights = ["--lm-weight", "0.5", "--word-bonus", "0"]
    for backend in ["flashlight"] + ([] if kind == "phone" else ["pyctcdecode"]):  # flashlight: phones -> words too
        assert _decode(capsys, exp, store, "--lm", str(lm), "--backend", backend, *weights) == TEXT, backend
    # word times: each word inside its utterance, in order
    code = main(["-q", "decode", str(exp), str(store), "--device", "cpu", "--lm", str(lm), "--format", "ctm"])
    rows = [r.split() for r in capsys.readouterr().out.splitlines()]
    assert code == 0 and [r[4] for r in rows] == [w for u in sorted(TEXT) for w in TEXT[u].split()]
    # tune on the same utterances: 0 errors is reachable, and decode picks the weights up
    code = main(["-q", "tune", str(exp), str(store), str(store / "text"), "--lm", str(lm),
                 "--lm-weights", "0,0.5,1", "--word-bonuses", "0,1"])
    out = capsys.readouterr().out
    assert code == 0 and "%WER 0.00" in out and (exp / "lm_tuning.yaml").is_file()
    assert _decode(capsys, exp, store, "--lm", str(lm)) == TEXT
    # forced alignment: one label per frame, the words in order in words.ctm
    code = main(["-q", "align", str(exp), str(store), "--out", str(tmp_path / "ali")])
    capsys.readouterr()
    assert code == 0
    words = [line.split()[4] for line in (tmp_path / "ali" / "words.ctm").read_text().splitlines()]
    assert words == [w for u in sorted(TEXT) for w in TEXT[u].split()]
