"""CTC forced alignment: `asrkit align` and asrkit.decode.align."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from decode_util import PHONE_WORDS, make_ctc_exp, make_frame_exp

from asrkit.data import FeatureStore
from asrkit.data.feature_store import ShardWriter, merge_shards
from asrkit.data.table import read_table, write_table
from asrkit.decode import load_exp
from asrkit.decode.align import (
    SIL,
    Target,
    align_store,
    frame_spans,
    spell,
    write_alignments,
)
from asrkit.decode.timing import best_path, unit_segments
from asrkit.data.units import UnitMap
from asrkit.errors import DataError
from asrkit.score.boundary import phone_starts


def _main():
    """The real CLI entry point, with `align` registered if the lead has not yet."""
    from asrkit.cli import align as align_cli
    from asrkit.cli import main as main_mod

    if not any(c.name == "align" for c in main_mod.app.registered_commands):
        align_cli.register(main_mod.app)
    return main_mod.main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = _main()(["-q", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# ------------------------------------------------------------ hand-built emissions
def _tokenizer(kind: str, tmp: Path):
    from asrkit.data.tokenizer import Tokenizer, train_tokenizer

    text = tmp / f"text_{kind}"
    text.write_text("".join(f"u{i} {w} {' '.join(PHONE_WORDS)}\n" for i, w in enumerate(PHONE_WORDS)))
    if kind == "phone":
        lex = tmp / "lexicon.txt"
        lex.write_text("".join(f"{w} {' '.join(p)}\n" for w, p in PHONE_WORDS.items()))
        train_tokenizer("phone", text, tmp / f"units_{kind}", lexicons=[lex], cmudict=False)
    else:
        train_tokenizer(kind, text, tmp / f"units_{kind}")
    tok = Tokenizer.load(tmp / f"units_{kind}")
    return UnitMap(tok.kind, tok.units, tokenizer=tok)


def _peaky(T: int, C: int, spikes: dict[int, int], blank: int = 0) -> torch.Tensor:
    """Log-probs ``(T, C)``: blank everywhere except unit ``c`` at frame ``t`` for ``spikes[t] = c``."""
    p = torch.full((T, C), 0.01)
    for t in range(T):
        p[t, spikes.get(t, blank)] = 1.0
    return torch.log(p / p.sum(-1, keepdim=True))


class _FixedModel(torch.nn.Module):
    """Returns the given log-probs for an utterance, looked up by its frame count."""

    def __init__(self, by_frames: dict[int, torch.Tensor], subsampling: int):
        super().__init__()
        self.by_frames = by_frames
        self.subsampling = subsampling

    def forward(self, feats, lengths):
        outs = [self.by_frames[int(n)] for n in lengths]
        T = max(o.shape[0] for o in outs)
        logits = torch.full((len(outs), T, outs[0].shape[1]), -30.0)
        for b, o in enumerate(outs):
            logits[b, : o.shape[0]] = o
        return logits, torch.tensor([o.shape[0] for o in outs])


@dataclass
class _FakeExp:
    model: torch.nn.Module
    units: UnitMap
    subsampling: int
    path: Path = Path("fake-exp")
    cmvn: str | None = None
    norm_vars: bool = True
    device: str = "cpu"
    input_dim: int | None = None


def _store(path: Path, frames: dict[str, int], text: dict[str, str] | None) -> FeatureStore:
    with ShardWriter(path, 0) as w:
        for u, t in frames.items():
            w.add(u, "spk", np.zeros((t, 4), dtype=np.float32))
    merge_shards(path, 1)
    if text is not None:
        write_table(path / "text", text)
    return FeatureStore(path)


def test_best_path_reproduces_peaky_alignment():
    # "cat sat": k ae t s ae t; spikes at output frames 1, 3, 4, 6, 8, 9 (the repeated 'ae' is no problem)
    ids = [5, 7, 9, 11, 7, 9]
    spikes = {1: 5, 3: 7, 4: 9, 6: 11, 8: 7, 9: 9}
    lp = _peaky(12, 13, spikes)
    path = best_path(lp, ids)
    want = [spikes.get(t, 0) for t in range(12)]
    assert path.tolist() == want
    assert unit_segments(path) == [(c, t, t + 1) for t, c in sorted(spikes.items())]
    # a repeated unit needs a blank between its runs; two spikes of the same unit in a row still split
    lp2 = _peaky(6, 13, {1: 7, 2: 7})
    segs = unit_segments(best_path(lp2, [7, 7]))
    assert [s[0] for s in segs] == [7, 7] and segs[0][2] <= segs[1][1]


def test_frame_spans_by_hand():
    tgt = Target("u", ["cat", "sat"], [5, 7, 9, 11, 7, 9], [0, 0, 0, 1, 1, 1])
    segs = [(5, 1, 2), (7, 3, 4), (9, 4, 5), (11, 8, 9), (7, 9, 10), (9, 10, 11)]
    # offset 0, no hold: unit k starts at 4 * start_k, runs until the next; frames before the first are sil
    spans = frame_spans(tgt, segs, frames=46, subsampling=4, offset=0, hold=None)
    assert spans == [(4, 12), (12, 16), (16, 32), (32, 36), (36, 40), (40, 46)]
    # hold 2: at the word boundary 't' keeps 2 frames after its segment's end (frame 20), then sil until 's'
    spans = frame_spans(tgt, segs, frames=46, subsampling=4, offset=0, hold=2)
    assert spans == [(4, 12), (12, 16), (16, 22), (32, 36), (36, 40), (40, 46)]
    # offset -3 moves every start back 3 frames, clipped at 0 and the end
    spans = frame_spans(tgt, segs, frames=46, subsampling=4, offset=-3, hold=None)
    assert [s for s, _ in spans] == [1, 9, 13, 29, 33, 37]
    # a too-short utterance still gives every unit at least one frame
    spans = frame_spans(tgt, segs, frames=7, subsampling=4, offset=0, hold=None)
    assert [s for s, _ in spans] == [1, 2, 3, 4, 5, 6] and spans[-1][1] == 7


@pytest.mark.parametrize("kind", ["phone", "char"])
def test_align_store_peaky_frames_ctm_and_words(kind, tmp_path):
    units = _tokenizer(kind, tmp_path)
    text = {"a1": "cat sat", "a2": "on a mat"}
    tgts = {u: spell(units, u, t.split()) for u, t in text.items()}
    sub = 2
    frames = {"a1": 61, "a2": 75}  # 31 and 38 output frames
    by_frames, spikes_of = {}, {}
    for u, tgt in tgts.items():
        T_out = -(-frames[u] // sub)
        spikes = {2 + 2 * k: i for k, i in enumerate(tgt.ids)}  # unit k spikes at output frame 2 + 2k
        assert max(spikes) < T_out
        by_frames[frames[u]] = _peaky(T_out, units.num_classes, spikes)
        spikes_of[u] = spikes
    store = _store(tmp_path / "feats", frames, text)
    exp = _FakeExp(_FixedModel(by_frames, sub), units, sub)
    res = list(align_store(exp, store, batch_size=1, offset=0, hold=None))
    assert [r.utt for r in res] == ["a1", "a2"]
    for r in res:
        spikes = spikes_of[r.utt]
        assert r.path.tolist() == [spikes.get(t, 0) for t in range(r.out_frames)]
        assert len(r.labels) == frames[r.utt] == r.frames
        assert set(r.labels) <= set(units.units) | {SIL}
        # units start at spike frame x subsampling; blanks after a unit belong to it
        kept = [(units.units[i], t) for t, i in sorted(spikes.items()) if units.units[i] != "|"]
        assert [(s, a) for s, a, _ in r.units] == [(s, t * sub) for s, t in kept]
        assert r.labels[: kept[0][1] * sub] == [SIL] * (kept[0][1] * sub)
        # words group their units: first unit's start to last unit's end
        words = text[r.utt].split()
        assert [w for w, _, _ in r.words] == words
        for (w, a, b), next_word in zip(r.words, r.words[1:] + [None]):
            n = len(units.tokenizer.encode([w]))
            first = next(k for k, u in enumerate(r.units) if u[1] == a)
            assert r.units[first + n - 1][2] == b
            if next_word is not None and kind == "phone":
                assert b == next_word[1]
    out = tmp_path / "out"
    summary = write_alignments(res, out, frame_shift_ms=10)
    assert summary.utterances == 2
    ali = read_table(out / "ali")
    assert {u: len(v.split()) for u, v in ali.items()} == frames
    # ctm times are output frames x frame shift x subsampling (offset 0): 2 decimals
    uctm = (out / "units.ctm").read_text().splitlines()
    first = uctm[0].split()
    t0 = min(spikes_of["a1"]) * 0.010 * sub
    assert first[:3] == ["a1", "1", f"{t0:.2f}"] and first[4] == units.units[spikes_of["a1"][min(spikes_of["a1"])]]
    assert len(uctm) == sum(len(r.units) for r in res)
    for line in uctm:
        u, _ch, start, dur, _tok = line.split()
        assert float(start) * 100 == pytest.approx(round(float(start) * 100)) and float(dur) > 0
    wctm = [line.split() for line in (out / "words.ctm").read_text().splitlines()]
    assert [(w[0], w[4]) for w in wctm] == [(u, w) for u in text for w in text[u].split()]
    r1 = res[0]
    assert wctm[0][2:4] == [f"{r1.words[0][1] * 0.01:.2f}", f"{(r1.words[0][2] - r1.words[0][1]) * 0.01:.2f}"]


def test_transcript_too_long_is_one_error(tmp_path):
    units = _tokenizer("phone", tmp_path)
    store = _store(tmp_path / "feats", {"b1": 9}, {"b1": "cat sat on a mat"})  # 5 output frames, 10 phones
    exp = _FakeExp(_FixedModel({9: _peaky(5, units.num_classes, {})}, 2), units, 2)
    with pytest.raises(DataError, match="b1.*too long"):
        list(align_store(exp, store))


# ------------------------------------------------------------ real (tiny) models, CLI
@pytest.fixture(scope="module")
def phone_exp(tmp_path_factory) -> Path:
    return make_ctc_exp(tmp_path_factory.mktemp("exp") / "phone", kind="phone", subsampling=2)


def test_align_cli_end_to_end(capsys, phone_exp, store, tmp_path):
    out = tmp_path / "ali"
    code, stdout, err = _run(capsys, "align", str(phone_exp), str(store), "--out", str(out), "--device", "cpu",
                             "--batch-size", "3")
    assert code == 0, err
    fs = FeatureStore(store)
    assert stdout.startswith(f"aligned {len(fs)} utterances") and len(stdout.splitlines()) == 1
    ali = read_table(out / "ali")
    assert list(ali) == fs.keys()
    exp = load_exp(phone_exp, device="cpu", task="ctc")
    for u, labels in ali.items():
        labs = labels.split()
        assert len(labs) == fs.num_frames(u)
        assert set(labs) <= set(exp.units.units[1:])  # phones and sil, never <blank>
        # the phones, in order, spell the transcript (runs of a repeated phone merge)
        want = [p for w in fs.text[u].split() for p in PHONE_WORDS[w]]
        runs = [p for p, _ in phone_starts(labs)]
        merged = [p for k, p in enumerate(want) if k == 0 or p != want[k - 1]]
        assert runs == merged
    words = [line.split() for line in (out / "words.ctm").read_text().splitlines()]
    assert [(w[0], w[4]) for w in words] == [(u, w) for u in fs for w in fs.text[u].split()]
    units = (out / "units.ctm").read_text().splitlines()
    assert len(units) == sum(len(PHONE_WORDS[w]) for u in fs for w in fs.text[u].split())
    # --text overrides the store's text
    other = tmp_path / "text"
    write_table(other, {u: "mat" for u in fs})
    code, _, err = _run(capsys, "align", str(phone_exp), str(store), "--out", str(tmp_path / "o2"), "--text",
                        str(other), "--device", "cpu")
    assert code == 0, err
    assert {line.split()[4] for line in (tmp_path / "o2" / "words.ctm").read_text().splitlines()} == {"mat"}


def _copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_align_cli_errors(capsys, phone_exp, store, tmp_path):
    out = tmp_path / "out"
    # missing EXP / FEATS
    code, _, err = _run(capsys, "align", str(tmp_path / "nope"), str(store), "--out", str(out))
    assert code == 1 and "no such exp dir" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "align", str(phone_exp), str(tmp_path / "nope"), "--out", str(out))
    assert code == 1 and "nope" in err and len(err.strip().splitlines()) == 1
    # a frame classifier
    frame = make_frame_exp(tmp_path / "frame", ["sil", "k", "ae"])
    code, _, err = _run(capsys, "align", str(frame), str(store), "--out", str(out))
    assert code == 2 and "frame classifier" in err
    # an utterance without a transcript
    s2 = _copy_store(store, tmp_path / "s2")
    text = read_table(s2 / "text")
    dropped = sorted(text)[1]
    del text[dropped]
    write_table(s2 / "text", text)
    code, _, err = _run(capsys, "align", str(phone_exp), str(s2), "--out", str(out), "--device", "cpu")
    assert code == 1 and "no transcript" in err and dropped in err and len(err.strip().splitlines()) == 1
    # words the lexicon cannot spell: by default their utterances are left out with a warning;
    # --oov error names them and stops
    s3 = _copy_store(store, tmp_path / "s3")
    text = read_table(s3 / "text")
    first = min(text)
    text[first] = "cat zyzzyva qwxl"
    write_table(s3 / "text", text)
    code, _, err = _run(capsys, "align", str(phone_exp), str(s3), "--out", str(out), "--device", "cpu",
                        "--oov", "error")
    assert code == 1 and "'zyzzyva'" in err and "'qwxl'" in err and first in err
    assert not (out / "ali").exists()  # nothing written
    code, stdout, err = _run(capsys, "align", str(phone_exp), str(s3), "--out", str(out), "--device", "cpu")
    assert code == 0 and "1 skipped" in stdout and "left out" in err
    assert first not in read_table(out / "ali")
    # a transcript too long for the audio
    s4 = _copy_store(store, tmp_path / "s4")
    text = read_table(s4 / "text")
    fs = FeatureStore(s4)
    short = min(fs.keys(), key=fs.num_frames)
    text[short] = " ".join(["cat"] * fs.num_frames(short))
    write_table(s4 / "text", text)
    code, _, err = _run(capsys, "align", str(phone_exp), str(s4), "--out", str(tmp_path / "o4"), "--device", "cpu")
    assert code == 1 and short in err and "too long" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o4" / "ali").exists()
    # no text at all
    s5 = _copy_store(store, tmp_path / "s5")
    (s5 / "text").unlink()
    code, _, err = _run(capsys, "align", str(phone_exp), str(s5), "--out", str(out), "--device", "cpu")
    assert code == 1 and "--text" in err


def test_char_model_aligns(capsys, store, tmp_path):
    exp = make_ctc_exp(tmp_path / "char", kind="char", subsampling=2)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "align", str(exp), str(store), "--out", str(out), "--device", "cpu")
    assert code == 0, err
    fs = FeatureStore(store)
    ali = read_table(out / "ali")
    for u in fs:
        labs = ali[u].split()
        assert len(labs) == fs.num_frames(u) and "|" not in labs and "<blank>" not in labs
    words = [line.split() for line in (out / "words.ctm").read_text().splitlines()]
    assert [(w[0], w[4]) for w in words] == [(u, w) for u in fs for w in fs.text[u].split()]
    units = [line.split()[4] for line in (out / "units.ctm").read_text().splitlines()]
    assert units == [c for u in fs for c in "".join(fs.text[u].split())]


def test_align_ali_trains_a_frame_classifier(capsys, phone_exp, store, tmp_path):
    """The classic loop: CTC alignment -> FEATS/ali -> asrkit train frame."""
    out = tmp_path / "ali"
    code, _, err = _run(capsys, "align", str(phone_exp), str(store), "--out", str(out), "--device", "cpu")
    assert code == 0, err
    feats = _copy_store(store, tmp_path / "feats")
    shutil.copy(out / "ali", feats / "ali")
    exp = tmp_path / "frame_exp"
    code, _, err = _run(capsys, "train", "frame", "--train", str(feats), "--dev", str(feats), "--out", str(exp),
                        "--device", "cpu", "train.epochs=1", "data.max_frames=200", "data.buckets=1",
                        "model.hidden=[16]", "model.context=1", "train.tensorboard=false", "train.threads=1")
    assert code == 0, err
    assert (exp / "checkpoints" / "best.pt").is_file()
    labels = (exp / "units" / "units.txt").read_text().split()[::2]
    assert "sil" in labels and "k" in labels
