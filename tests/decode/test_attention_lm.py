"""Word n-gram shallow fusion in the attention search (asrkit.decode.word_lm)."""
from __future__ import annotations

import math

import pytest
import torch

from asrkit.data.tokenizer import train_tokenizer
from asrkit.data.units import load_units_dir
from asrkit.decode.attention import attention_beam_search
from asrkit.decode.word_lm import WordLM
from asrkit.errors import DataError, UsageError

from attention_util import EOS, Encoded, FakeSeq2Seq, probs_table

LN10 = math.log(10.0)

# "ba" is far likelier than "ab" after <s>; "ab ba" likelier than "ab ab"
ARPA = """\\data\\
ngram 1=5
ngram 2=4

\\1-grams:
-99\t<s>\t0
-1\t</s>
-2\tab\t0
-0.3\tba\t0
-1\t<unk>

\\2-grams:
-2.0\t<s> ab
-0.2\t<s> ba
-0.1\tab ba
-3.0\tab ab

\\end\\
"""


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    p = tmp_path_factory.mktemp("lm") / "lm2.arpa"
    p.write_text(ARPA)
    return p


@pytest.fixture(scope="module")
def char_units(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    (d / "text").write_text("u1 ab ba\nu2 ba ab\n")
    train_tokenizer("char", d / "text", d / "units")
    return load_units_dir(d / "units", "char")


@pytest.fixture(scope="module")
def bpe_units(tmp_path_factory):
    d = tmp_path_factory.mktemp("units_bpe")
    (d / "text").write_text("".join(f"u{i} ab ba abba baab {'ab ' * (i % 3)}ba\n" for i in range(20)))
    train_tokenizer("bpe", d / "text", d / "units", vocab_size=8)
    return load_units_dir(d / "units", "bpe")


def _unit_score(lm: WordLM, ids: list[int]) -> float:
    """The LM gains the search adds token by token, <eos> last."""
    st, total = lm.initial(), 0.0
    for t in ids:
        total += lm.score(st, t)
        st = lm.advance(st, t)
    return total + lm.score(st, EOS)


@pytest.mark.parametrize("words", [["ab"], ["ab", "ba"], ["ba", "ab", "ab"], ["bab", "ab"], []])
def test_char_words_are_scored_at_their_ends(arpa, char_units, words):
    lm = WordLM(arpa, char_units)
    ids = char_units.tokenizer.encode(words)
    assert _unit_score(lm, ids) == pytest.approx(lm.words_score(words), abs=1e-9)
    bar = char_units.id_of("|")
    assert _unit_score(lm, [bar, *ids, bar, bar]) == pytest.approx(lm.words_score(words), abs=1e-9)  # empty words
    # nothing is added inside a word
    st = lm.initial()
    assert lm.score(st, char_units.id_of("a")) == 0.0


def test_unknown_words_pay_the_oov_penalty_once_as_they_leave_the_vocabulary(arpa, char_units):
    lm = WordLM(arpa, char_units, oov_penalty=-7.0)
    u = char_units.id_of
    st = lm.initial()
    assert lm.score(st, u("b")) == 0.0  # "b" begins "ba"
    st = lm.advance(st, u("b"))
    assert lm.score(st, u("a")) == 0.0  # "ba"
    st = lm.advance(st, u("a"))
    assert lm.score(st, u("b")) == -7.0  # "bab" begins no word of the LM: paid here
    st = lm.advance(st, u("b"))
    assert lm.score(st, u("a")) == 0.0  # ... and only once
    st = lm.advance(st, u("a"))
    # at its end the unknown word gets <unk>'s probability, no second penalty
    assert lm.score(st, u("|")) == pytest.approx(lm.words_score(["baba"], eos=False) + 7.0)
    # "a" alone begins "ab" but is no word: its penalty comes at its end
    st = lm.advance(lm.initial(), u("a"))
    assert lm.score(st, u("|")) == pytest.approx(-1.0 * LN10 - 7.0)  # <unk>, then the penalty
    # dropping the space costs more than the two known words it merges
    assert lm.words_score(["abba"]) < lm.words_score(["ab", "ba"])
    assert WordLM(arpa, char_units, oov_penalty=0.0).words_score(["abba"]) > lm.words_score(["abba"])


def test_known_values(arpa, char_units):
    lm = WordLM(arpa, char_units)
    assert lm.words_score(["ab", "ba"]) == pytest.approx((-2.0 - 0.1 - 1.0) * LN10)  # </s> backs off to its unigram
    assert lm.words_score(["ba"], eos=False) == pytest.approx(-0.2 * LN10)


@pytest.mark.parametrize("words", [["ab", "ba"], ["abba", "ba", "baab"], ["ab"]])
def test_bpe_words_are_scored_at_the_next_word_start(arpa, bpe_units, words):
    lm = WordLM(arpa, bpe_units)
    ids = bpe_units.tokenizer.encode(words)
    assert bpe_units.tokens(ids) == words
    assert _unit_score(lm, ids) == pytest.approx(lm.words_score(words), abs=1e-9)


def test_lm_fusion_changes_the_choice(arpa, char_units):
    u = char_units.id_of
    C = char_units.num_classes
    # acoustically "ab" (0.55) before "ba" (0.45); the LM says "ba"
    table = probs_table({(): {u("a"): 0.55, u("b"): 0.45}, (u("a"),): {u("b"): 0.9}, (u("a"), u("b")): {EOS: 0.9},
                         (u("b"),): {u("a"): 0.9}, (u("b"), u("a")): {EOS: 0.9}}, C)
    model = FakeSeq2Seq(C, table=table, has_ctc=False)
    enc = Encoded(torch.zeros(1, 5, C), torch.tensor([5]), None)
    lm = WordLM(arpa, char_units)
    plain = attention_beam_search(model, enc, 2, lm=lm, lm_weight=0.0)[0][0]
    assert char_units.tokens(plain.ids) == ["ab"] and "lm" not in plain.parts
    fused = attention_beam_search(model, enc, 2, lm=lm, lm_weight=1.0)[0][0]
    assert char_units.tokens(fused.ids) == ["ba"]
    assert fused.parts["lm"] == pytest.approx(lm.words_score(["ba"]), abs=1e-5)
    assert fused.score == pytest.approx(fused.parts["att"] + fused.parts["lm"], abs=1e-5)


def test_lm_refusals(arpa, tmp_path, char_units):
    d = tmp_path / "phone"
    d.mkdir()
    (d / "lex").write_text("ab ah b\nba b ah\n")
    (d / "text").write_text("u1 ab ba\n")
    train_tokenizer("phone", d / "text", d / "units", lexicons=[d / "lex"], cmudict=False)
    with pytest.raises(UsageError, match="units are phones"):
        WordLM(arpa, load_units_dir(d / "units", "phone"))
    uni = tmp_path / "uni.arpa"
    uni.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\tab\n\n\\end\\\n")
    with pytest.raises(DataError, match="unigram"):
        WordLM(uni, char_units)


def test_kenlm_binary_loads(char_units):
    from pathlib import Path

    binary = Path(__file__).parent / "data" / "lm3_small.bin"
    lm = WordLM(binary, char_units)
    assert math.isfinite(lm.words_score(["a"])) and lm.words_score(["a"]) < 0
