"""The modified Kneser-Ney estimator: hand-computed values, normalization of
every history, kenlm agreement, pruning, vocabularies, streaming counts."""
from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import kenlm
import numpy as np
import pytest

from asrkit.errors import DataError, UsageError
from asrkit.lm import counts as counts_mod
from asrkit.lm import build_lm, build_model, parse_prune, prob_sum, read_arpa
from asrkit.lm.counts import BOS, EOS, UNK, pack_rows, unique_rows

# 4 x "x", 3 x "y", 1 x "z z", 2 x "w": bigram count-of-counts n1..n4 = 3 2 2 2.
TOY = ["x"] * 4 + ["y"] * 3 + ["z z"] + ["w"] * 2


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _corpus(seed: int, sentences: int = 120, vocab: int = 12) -> list[str]:
    """A small random corpus with some structure (a Zipf-ish first-order Markov chain)."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    weights = [1.0 / (i + 1) for i in range(vocab)]
    lines = []
    for _ in range(sentences):
        n = rng.randint(1, 7)
        sent = [rng.choices(words, weights)[0]]
        for _ in range(n - 1):
            prev = int(sent[-1][1:])
            if rng.random() < 0.5:
                sent.append(words[(prev * 3 + 1) % vocab])
            else:
                sent.append(rng.choices(words, weights)[0])
        lines.append(" ".join(sent))
    return lines


def _histories(lm) -> list[tuple[str, ...]]:
    """Every history the ARPA can condition on: the empty one and each n-gram
    below the top order that does not end in </s>."""
    hs: list[tuple[str, ...]] = [()]
    for k in range(1, lm.order):
        hs += [g for g in lm.ngrams[k] if g[-1] != EOS]
    return hs


def test_hand_computed_discounts_and_probabilities(tmp_path: Path):
    text = _write(tmp_path / "toy.txt", TOY)
    model, _ = build_model(text, 2, progress=False)
    # Bigram counts: <s> x 4, x </s> 4, <s> y 3, y </s> 3, <s> w 2, w </s> 2, <s> z 1, z z 1, z </s> 1.
    assert model.count_of_counts[2] == (3, 2, 2, 2)
    y = Fraction(3, 7)  # n1 / (n1 + 2 n2)
    d1, d2, d3 = 1 - 2 * y * 2 / 3, 2 - 3 * y * 2 / 2, 3 - 4 * y * 2 / 2
    assert (d1, d2, d3) == (Fraction(3, 7), Fraction(5, 7), Fraction(9, 7))
    assert model.discounts[2] == pytest.approx((float(d1), float(d2), float(d3)), abs=1e-12)
    # Unigram continuation counts: x y w 1 (after <s>), z 2 (<s>, z), </s> 4: n1..n4 = 3 1 0 1,
    # no valid D3 -> lmplz's fallback discounts 0.5 1 1.5.
    assert model.count_of_counts[1] == (3, 1, 0, 1)
    assert model.discounts[1] == (0.5, 1.0, 1.5)
    u = 6  # vocabulary without <s>: <unk> </s> x y z w
    gamma0 = (Fraction(1, 2) * 3 + 1 + Fraction(3, 2)) / 9
    p1 = {w: (a - d) / 9 + gamma0 / u for w, a, d in
          [("x", 1, Fraction(1, 2)), ("z", 2, 1), ("</s>", 4, Fraction(3, 2))]}
    p1["<unk>"] = gamma0 / u
    assert sum(p1.values()) + 2 * p1["x"] == 1  # y and w equal x
    gamma_bos = (d3 + d3 + d1 + d2) / 10  # <s> x 4, y 3, z 1, w 2
    p_x_bos = (4 - d3) / 10 + gamma_bos * p1["x"]
    gamma_z = (d1 + d1) / 2  # z z 1, z </s> 1
    p_eos_z = (1 - d1) / 2 + gamma_z * p1["</s>"]
    p_unk_z = gamma_z * p1["<unk>"]  # absent bigram: backoff

    out = tmp_path / "toy.arpa"
    build_lm(text, out, 2, progress=False)
    lm = read_arpa(out)
    assert 10 ** lm.ngrams[1][("x",)][0] == pytest.approx(float(p1["x"]), rel=1e-6)
    assert 10 ** lm.ngrams[1][(UNK,)][0] == pytest.approx(float(p1["<unk>"]), rel=1e-6)
    assert lm.ngrams[1][(BOS,)][0] == -99
    assert 10 ** lm.ngrams[1][(BOS,)][1] == pytest.approx(float(gamma_bos), rel=1e-6)
    assert 10 ** lm.logprob("x", [BOS]) == pytest.approx(float(p_x_bos), rel=1e-6)
    assert 10 ** lm.logprob(EOS, ["z"]) == pytest.approx(float(p_eos_z), rel=1e-6)
    assert 10 ** lm.logprob(UNK, ["z"]) == pytest.approx(float(p_unk_z), rel=1e-6)
    km = kenlm.Model(str(out))
    assert km.score("x", bos=True, eos=True) == pytest.approx(
        float(np.log10(float(p_x_bos)) + lm.logprob(EOS, ["x"])), abs=1e-5)


@pytest.mark.parametrize(("order", "prune"), [(1, None), (2, None), (2, "0,1"), (3, None), (3, "0,1,1"), (4, None), (4, "0,1,1")])
@pytest.mark.parametrize("unk", [False, True])
def test_every_history_normalizes_and_kenlm_agrees(tmp_path: Path, order: int, prune: str | None, unk: bool):
    if prune:
        prune = ",".join(prune.split(",")[:order])  # one threshold per order
    lines = _corpus(seed=order)
    text = _write(tmp_path / "train.txt", lines)
    vocab = None
    if unk:  # a vocabulary without the rarest words: they become <unk>, estimated as a word
        vocab = _write(tmp_path / "vocab.txt", [f"w{i}" for i in range(8)] + ["never_seen"])
    out = tmp_path / "lm.arpa"
    build_lm(text, out, order, prune=prune, vocab=vocab, keep_unk=unk, progress=False)
    lm = read_arpa(out)
    if unk:
        assert ("never_seen",) in lm.ngrams[1] and ("w10",) not in lm.ngrams[1]
        if order > 1:
            assert any(UNK in g for g in lm.ngrams[2]), "--unk must estimate <unk> n-grams"
    elif order > 1:
        assert not any(UNK in g for k in range(2, order + 1) for g in lm.ngrams[k])
    hs = _histories(lm)
    assert len(hs) > 1 or order == 1
    for h in hs:
        assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-4), h
    if order == 1:
        return  # kenlm loads orders >= 2 only
    km = kenlm.Model(str(out))
    vocab_words = [w for w in lm.vocab if w != BOS]
    for h in hs[:: max(1, len(hs) // 40)]:
        state = kenlm.State()
        if h and h[0] == BOS:
            km.BeginSentenceWrite(state)
            rest = h[1:]
        else:
            km.NullContextWrite(state)
            rest = h
        for w in rest:
            nxt = kenlm.State()
            km.BaseScore(state, w, nxt)
            state = nxt
        for w in vocab_words:
            ours = lm.logprob(w, h)
            theirs = km.BaseScore(state, w, kenlm.State())
            assert theirs == pytest.approx(ours, abs=2e-5), (h, w)
    for sent in lines[:20] + ["w0 w11 w3 unseen"]:
        assert km.score(sent, bos=True, eos=True) == pytest.approx(lm.sentence_logprob(sent.split()), abs=1e-4)


def test_prune_drops_low_counts_keeps_prefixes_and_suffixes(tmp_path: Path):
    text = _write(tmp_path / "t.txt", _corpus(seed=7, sentences=200))
    full = tmp_path / "full.arpa"
    pruned = tmp_path / "pruned.arpa"
    build_lm(text, full, 3, progress=False)
    build_lm(text, pruned, 3, prune="0,1,2", progress=False)
    lf, lp = read_arpa(full), read_arpa(pruned)
    assert len(lp.ngrams[3]) < len(lf.ngrams[3]) and len(lp.ngrams[2]) < len(lf.ngrams[2])
    assert set(lp.ngrams[1]) == set(lf.ngrams[1])
    for k in (2, 3):
        for g in lp.ngrams[k]:
            assert g in lf.ngrams[k]
            assert g[:-1] in lp.ngrams[k - 1] or g[:-1] == (BOS,), g
            assert g[1:] in lp.ngrams[k - 1], g
    # The pruned model still normalizes for every history.
    for h in _histories(lp):
        assert prob_sum(lp, h) == pytest.approx(1.0, abs=1e-4)


def test_toy_prune_removes_singleton_bigrams(tmp_path: Path):
    text = _write(tmp_path / "toy.txt", TOY)
    out = tmp_path / "p.arpa"
    build_lm(text, out, 2, prune="0,1", progress=False)
    lm = read_arpa(out)
    assert set(lm.ngrams[2]) == {(BOS, "x"), ("x", EOS), (BOS, "y"), ("y", EOS), (BOS, "w"), ("w", EOS)}
    for h in _histories(lm):
        assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-6)


def test_parse_prune():
    assert parse_prune(None, 3) == [0, 0, 0]
    assert parse_prune("0,1", 4) == [0, 1, 1, 1]
    assert parse_prune("0 1 2", 3) == [0, 1, 2]
    for bad in ("1", "0,x", "0,-1", "0,1,1,1"):
        with pytest.raises(UsageError):
            parse_prune(bad, 3)


def test_vocab_maps_others_to_unk_and_drops_their_ngrams(tmp_path: Path):
    text = _write(tmp_path / "t.txt", ["a b c", "a b d", "e a b"])
    vocab = _write(tmp_path / "words.txt", ["<eps> 0", "a 1", "b 2", "c 3", "#0 4", "zz 5"])
    out = tmp_path / "v.arpa"
    build_lm(text, out, 3, vocab=vocab, progress=False)
    lm = read_arpa(out)
    assert set(w for (w,) in lm.ngrams[1]) == {UNK, BOS, EOS, "a", "b", "c", "zz"}
    assert ("b", "c") in lm.ngrams[2] and not any(UNK in g for g in lm.ngrams[2])
    # a <unk> history still counts as a left context: "a b" was seen after <s> and after <unk>
    assert (BOS, "a", "b") in lm.ngrams[3]
    for h in _histories(lm):
        assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-4)


def test_units_as_tokens(tmp_path: Path):
    """A character LM: the text is space-separated characters."""
    words = ["the cat", "a hat", "the hat sat", "cats"]
    lines = [" ".join(w.replace(" ", "|")) for w in words]
    text = _write(tmp_path / "chars.txt", lines * 3)
    out = tmp_path / "c.arpa"
    build_lm(text, out, 4, progress=False)
    lm = read_arpa(out)
    assert ("|",) in lm.ngrams[1] and ("t", "h", "e") in lm.ngrams[3]
    for h in _histories(lm):
        assert prob_sum(lm, h) == pytest.approx(1.0, abs=1e-4)


def test_streaming_chunks_give_the_same_counts(tmp_path: Path, monkeypatch):
    text = _write(tmp_path / "t.txt", _corpus(seed=3, sentences=300))
    one_rows, one_counts = _count(text, 3)
    monkeypatch.setattr(counts_mod, "_CHUNK_TOKENS", 64)
    rows, counts = _count(text, 3)
    assert np.array_equal(rows, one_rows) and np.array_equal(counts, one_counts)


def _count(text: Path, order: int):
    voc = counts_mod.Vocabulary()
    return counts_mod.count_text(text, order, voc, progress=False).result()


def test_wide_keys_sort_like_packed_keys():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 50, size=(500, 4)).astype(np.int32)
    w = np.ones(len(rows), dtype=np.int64)
    narrow = unique_rows(rows, w, bits=6)  # int64 keys
    wide = unique_rows(rows, w, bits=20)  # 80 bits: byte-string keys
    for a, b in zip(narrow, wide):
        assert np.array_equal(a, b)
    assert pack_rows(rows, 20).dtype.kind == "V"


def test_large_vocabulary_uses_wide_keys(tmp_path: Path):
    """Order 4 with more than 2^15 types needs > 63 bits per key."""
    lines = _corpus(seed=5)
    text = _write(tmp_path / "t.txt", lines)
    vocab = _write(tmp_path / "v.txt", [f"w{i}" for i in range(12)] + [f"x{i}" for i in range(33000)])
    small, _ = build_model(text, 4, progress=False)
    big, _ = build_model(text, 4, vocab=vocab, progress=False)
    for k in (2, 3, 4):
        key = lambda m: sorted(tuple(m.words[i] for i in r) for r in m.tables[k].rows.tolist())  # noqa: E731
        assert key(small) == key(big)
    assert big.unigram_prob.sum() == pytest.approx(1.0, abs=1e-9)


def test_empty_counts_is_a_data_error():
    from asrkit.lm import estimate

    with pytest.raises(DataError):
        estimate(np.zeros((0, 2), np.int32), np.zeros(0, np.int64), [UNK, BOS, EOS], 2)


def test_lm_package_imports_no_torch():
    code = "import sys, asrkit.lm, asrkit.cli.lm; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
