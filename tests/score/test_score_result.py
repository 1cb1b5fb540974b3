"""asrkit.score.score(): totals, modes, normalization, speakers, confusions, CER."""
from __future__ import annotations

import random

import jiwer
import pytest

from asrkit.errors import DataError
from asrkit.score import score, speaker_of

REFS = {
    "spk1-u1": "the cat sat on the mat".split(),
    "spk1-u2": "hello world".split(),
    "spk2_u1": "a b c d".split(),
}
HYPS = {
    "spk1-u1": "the cat sat on mat".split(),
    "spk1-u2": "hello there world".split(),
    "spk2_u1": "a x c d e".split(),
}


def test_totals_and_alignments():
    r = score(REFS, HYPS)
    w = r.words
    assert (w.ref, w.hyp, w.cor, w.sub, w.dele, w.ins) == (12, 13, 10, 1, 1, 2)
    assert r.wer == pytest.approx(100 * 4 / 12)
    assert r.sentence_errors == 3 and r.ser == 100.0 and r.utts == 3
    al = r.alignment("spk2_u1")
    assert al.ops == "CSCCI"
    assert list(al.columns()) == [("a", "a", "C"), ("b", "x", "S"), ("c", "c", "C"), ("d", "d", "C"), (None, "e", "I")]
    assert r.alignment(0).ops == "CCCCDC"
    assert r.cer is None
    with pytest.raises(KeyError):
        r.alignment("nope")


def test_matches_jiwer_on_random_data():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(30)]
    refs, hyps = {}, {}
    for k in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
        hyp = [w if rng.random() < 0.8 else rng.choice(vocab) for w in ref if rng.random() < 0.9]
        hyp += [rng.choice(vocab) for _ in range(rng.randint(0, 2))]
        refs[f"s{k % 4}-u{k}"] = ref
        hyps[f"s{k % 4}-u{k}"] = hyp
    r = score(refs, hyps)
    j = jiwer.process_words([" ".join(v) for v in refs.values()], [" ".join(hyps[u]) for u in refs])
    assert r.words.errors == j.substitutions + j.deletions + j.insertions
    assert r.wer == pytest.approx(100 * j.wer)


def test_modes():
    hyps = {"spk1-u1": HYPS["spk1-u1"], "extra-1": ["x"]}
    with pytest.raises(DataError) as e:
        score(REFS, hyps, hyp_name="hyp.txt")
    msg = str(e.value)
    assert "2 reference utterance(s) have no hypothesis in hyp.txt: spk1-u2, spk2_u1" in msg
    assert "1 hypothesis utterance(s) are not in reference: extra-1" in msg
    p = score(REFS, hyps, mode="present")
    assert p.ids == ["spk1-u1"] and p.missing == ["spk1-u2", "spk2_u1"] and p.extra == ["extra-1"]
    assert p.words.ref == 6
    a = score(REFS, hyps, mode="all")
    assert a.utts == 3 and a.words.dele == 1 + 2 + 4 and a.words.ref == 12
    with pytest.raises(DataError, match="nothing to score"):
        score(REFS, {"zzz": []}, mode="present")
    with pytest.raises(ValueError):
        score(REFS, HYPS, mode="lenient")


def test_strict_names_at_most_five_ids():
    refs = {f"u{k}": ["a"] for k in range(8)}
    with pytest.raises(DataError, match=r"8 reference utterance\(s\).*u0, u1, u2, u3, u4, \.\.\. \(8 in all\)"):
        score(refs, {})


def test_normalization():
    refs = {"u1": "Hello , World [laughter] <noise> don't".split()}
    hyps = {"u1": "hello world. dont".split()}
    assert score(refs, hyps).words.errors > 0
    r = score(refs, hyps, ignore_case=True, strip_punct=True, ignore=["[laughter]", "<NOISE>"])
    assert r.refs[0] == ["hello", "world", "dont"] and r.words.errors == 0
    # ignore is exact without --ignore-case
    r = score({"u1": ["a", "<NOISE>"]}, {"u1": ["a"]}, ignore=["<noise>"])
    assert r.words.dele == 1


def test_speakers_and_per_speaker():
    assert speaker_of("spk1-utt003") == "spk1" and speaker_of("spk2_u1") == "spk2" and speaker_of("x") == "x"
    r = score(REFS, HYPS, cer=True)
    stats = {s.speaker: s for s in r.per_speaker()}
    assert list(stats) == ["spk1", "spk2"]
    assert stats["spk1"].utts == 2 and stats["spk1"].words.ref == 8 and stats["spk1"].words.errors == 2
    assert stats["spk2"].words.sub == 1 and stats["spk2"].chars.rate == pytest.approx(50.0)
    custom = score(REFS, HYPS, utt2spk={"spk1-u1": "A", "spk1-u2": "B", "spk2_u1": "A"})
    assert [s.speaker for s in custom.per_speaker()] == ["A", "B"]
    with pytest.raises(DataError, match="utt2spk has no speaker for 1 utterance"):
        score(REFS, HYPS, utt2spk={"spk1-u1": "A", "spk1-u2": "B"})


def test_confusions_count_and_order():
    refs = {f"u{k}": ["a", "b", "c"] for k in range(4)}
    hyps = {"u0": ["a", "x", "c"], "u1": ["a", "x", "c"], "u2": ["a", "y", "c", "z"], "u3": ["b", "c"]}
    c = score(refs, hyps).confusions(5)
    assert c.sub == [(("b", "x"), 2), (("b", "y"), 1)]
    assert c.dele == [("a", 1)]
    assert c.ins == [("z", 1)]
    assert score(refs, hyps).confusions(1).sub == [(("b", "x"), 2)]


def test_cer_excludes_spaces():
    r = score({"u": ["ab", "cd"]}, {"u": ["abcd"]}, cer=True)
    assert r.words.errors == 2 and r.chars.errors == 0 and r.chars.ref == 4 and r.cer == 0.0
    r = score({"u": ["héllo"]}, {"u": ["hello"]}, cer=True)
    assert (r.chars.sub, r.chars.ref) == (1, 5)


def test_empty_reference_rate_is_undefined():
    r = score({"u": []}, {"u": ["a"]})
    assert r.words.ins == 1 and r.wer is None
    assert score({"u": []}, {"u": []}).wer == 0.0
