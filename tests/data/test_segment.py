"""``asrkit segment DATA_IN DATA_OUT``: recordings cut at pauses into a data dir with a ``segments``
file that validates and featurizes; the speech measures (energy, a CTC model's blanks); and the
refusals of bad segments files by ``asrkit data validate`` and ``asrkit featurize``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.cli.main import main
from asrkit.corpora.tiny import tiny_root
from asrkit.data import DataDir, FeatureStore
from asrkit.data.datadir import Segment
from asrkit.data.table import read_table
from asrkit.data.validate import validate
from asrkit.pipeline.segment import ctc_speech, speech_spans

RATE = 16000


def _speech(n: int) -> list[np.ndarray]:
    from asrkit.audio import load

    root = tiny_root()
    wav = read_table(root / "test" / "wav.scp")
    return [load(root / wav[u], RATE)[0] for u in sorted(wav)[:n]]


def _recording(parts: list[np.ndarray | float], rate: int = RATE) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speech and pauses (float: seconds of low noise) joined; -> samples, (start, end) of each speech part."""
    rng = np.random.default_rng(0)
    out, spans, t = [], [], 0
    for p in parts:
        x = (rng.standard_normal(int(p * RATE)) * 1e-4).astype(np.float32) if isinstance(p, float) else p
        if not isinstance(p, float):
            spans.append((t / RATE, (t + len(x)) / RATE))
        out.append(x)
        t += len(x)
    x = np.concatenate(out)
    if rate != RATE:
        from asrkit.audio import resample

        x = resample(x, RATE, rate)
    return x, spans


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Two recordings of one speaker: three utterances with pauses of 1.0 and 0.6 s (16 kHz), and one
    with a 0.8 s pause (22.05 kHz); a text to see it dropped."""
    d = tmp_path_factory.mktemp("seg")
    u = _speech(5)
    x1, s1 = _recording([0.5, u[0], 1.0, u[1], 0.6, u[2], 0.5])
    x2, s2 = _recording([0.3, u[3], 0.8, u[4], 0.4], rate=22050)
    sf.write(str(d / "r1.wav"), x1, RATE, subtype="PCM_16")
    sf.write(str(d / "r2.wav"), x2, 22050, subtype="PCM_16")
    data = d / "data"
    DataDir(wav_scp={"spk-r1": str(d / "r1.wav"), "spk-r2": str(d / "r2.wav")},
            utt2spk={"spk-r1": "spk", "spk-r2": "spk"},
            text={"spk-r1": "one two three", "spk-r2": "four five"}).save(data)
    return d, data, {"spk-r1": s1, "spk-r2": s2}


def _segments(path: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for u, s in sorted(DataDir.load(path).segments.items(), key=lambda kv: (kv[1].reco, kv[1].start)):
        out.setdefault(s.reco, []).append((s.start, s.end))
    return out


def test_energy_segments_find_the_utterances_and_featurize(capsys, recordings, tmp_path):
    d, data, truth = recordings
    out = tmp_path / "seg"
    assert main(["segment", str(data), str(out)]) == 0
    err = capsys.readouterr().err
    assert "text not carried over" in " ".join(err.split())
    got = _segments(out)
    for reco, spans in truth.items():
        assert len(got[reco]) == len(spans), (reco, got[reco], spans)
        for (a, b), (s, e) in zip(spans, got[reco]):
            assert abs(s - a) < 0.2 and abs(e - b) < 0.2, (reco, (a, b), (s, e))  # padding 0.1 s + the smoothing
    # a data dir asrkit reads: valid, its utterances featurize (at the audio's own lengths)
    assert validate(out) == []
    new = DataDir.load(out)
    assert new.text is None and set(new.utt2spk.values()) == {"spk"}
    assert all(u.startswith(new.segments[u].reco + "-") for u in new.utt_ids)
    assert main(["-q", "featurize", str(out), str(tmp_path / "feats")]) == 0
    st = FeatureStore(tmp_path / "feats")
    assert st.keys() == new.utt_ids
    for u in st.keys():
        s = new.segments[u]
        assert abs(st.num_frames(u) - (s.end - s.start) * 100) <= 3


def test_segment_options(capsys, recordings, tmp_path):
    d, data, truth = recordings
    # pauses shorter than --min-silence do not cut: r1's 0.6 s pause and r2's 0.8 s pause (~1 s with the
    # silence the utterances hold themselves) stay inside, r1's 1 s pause (~1.2 s) cuts
    assert main(["-q", "segment", str(data), str(tmp_path / "a"), "--min-silence", "1.1"]) == 0
    got = _segments(tmp_path / "a")
    assert len(got["spk-r1"]) == 2 and len(got["spk-r2"]) == 1
    # --max-seconds: longer stretches cut; every piece at most that long (plus the padding on both sides)
    assert main(["-q", "segment", str(data), str(tmp_path / "b"), "--max-seconds", "2"]) == 0
    got = _segments(tmp_path / "b")
    assert sum(len(v) for v in got.values()) > 5
    assert all(e - s <= 2 + 0.2 + 1e-6 for v in got.values() for s, e in v)
    assert validate(tmp_path / "b") == []
    # --min-seconds longer than any utterance: no speech left, one line
    code = main(["-q", "segment", str(data), str(tmp_path / "c"), "--min-seconds", "9", "--max-seconds", "20"])
    err = capsys.readouterr().err
    assert code == 1 and "no speech found" in err and len(err.strip().splitlines()) == 1
    for bad in (["--max-seconds", "0.5"], ["--min-silence", "0"], ["--threshold", "1.5"],
                ["--min-seconds", "30"], ["--padding", "-1"]):
        code = main(["segment", str(data), str(tmp_path / "d"), *bad])
        err = capsys.readouterr().err
        assert code == 2 and bad[0] in err and len(err.strip().splitlines()) == 1, (bad, err)
    # a data dir that is already segmented, and an output folder another command made
    code = main(["segment", str(tmp_path / "a"), str(tmp_path / "e")])
    assert code == 1 and "already has a segments file" in capsys.readouterr().err
    code = main(["segment", str(data), str(data)])
    assert code != 0 and not (data / "segments").exists()
    assert (data / "text").is_file()


def test_speech_spans_steps():
    speech = np.zeros(100, dtype=bool)
    speech[10:20] = speech[25:40] = True     # a 5-frame pause: joined when min_silence > 5
    speech[60:62] = True                     # a 2-frame blip: left out when min_frames > 2
    speech[70:100] = True
    quiet = np.ones(100, np.float32)
    quiet[85] = 0.0                          # the quietest point of the last stretch
    kw = dict(min_frames=3, max_frames=100, padding=0)
    assert speech_spans(speech, quiet, min_silence=6, **kw) == [(10, 40), (70, 100)]
    assert speech_spans(speech, quiet, min_silence=5, **kw) == [(10, 20), (25, 40), (70, 100)]
    assert speech_spans(speech, quiet, min_silence=6, min_frames=2, max_frames=100, padding=0)[1] == (60, 62)
    # a stretch longer than max_frames is cut at its quietest point
    assert speech_spans(speech, quiet, min_silence=6, min_frames=3, max_frames=20, padding=0)[-2:] == \
        [(70, 85), (85, 100)]
    # padding never reaches into the neighbour nor past the recording
    spans = speech_spans(speech, quiet, min_silence=6, min_frames=3, max_frames=100, padding=20)
    assert spans == [(0, 55), (55, 100)]


def test_ctc_speech_from_blank_posteriors():
    """A unit emitted at output frames 2 and 3, then 9 (subsampling 2): speech at input frames 4..7 and
    18..19; the rest is blank."""
    T, C = 12, 4
    lp = torch.full((T, C), -10.0)
    lp[:, 0] = 0.0
    for t, c in ((2, 1), (3, 2), (9, 3)):
        lp[t, 0], lp[t, c] = -10.0, 0.0
    speech, quiet = ctc_speech(lp, blank=0, subsampling=2, frames=23)
    assert np.flatnonzero(speech).tolist() == [4, 5, 6, 7, 18, 19]
    assert len(quiet) == 23 and quiet[4] > 0.99 and quiet[0] < 0.01


def test_segment_with_a_ctc_model(capsys, recordings, tmp_path):
    """--exp: the model's emissions decide where the speech is, and its forced alignment splits each
    recording's transcript between the segments (a random model here: the words land somewhere, but all of
    them, in order, each segment with at least one)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "decode"))
    from decode_util import DIM, make_ctc_exp

    d, data, _ = recordings
    exp = make_ctc_exp(tmp_path / "exp", kind="char", cmvn=None)
    (exp / "features.yaml").write_text(f"type: fbank\nnum_mel_bins: {DIM}\n")
    spelled = tmp_path / "data"  # the model's units spell these words
    truth = {"spk-r1": "a cat sat on a mat", "spk-r2": "a mat sat on a cat and a cat sat"}
    DataDir(wav_scp=DataDir.load(data).wav_scp, utt2spk={"spk-r1": "spk", "spk-r2": "spk"}, text=truth).save(spelled)
    out = tmp_path / "seg"
    code = main(["segment", str(spelled), str(out), "--exp", str(exp), "--device", "cpu", "--min-silence", "0.2"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0, err
    assert "text split between the segments" in err
    assert validate(out) == []
    new = DataDir.load(out)
    assert len(new.segments) >= 2 and all(0.3 <= s.end - s.start <= 20.2 for s in new.segments.values())
    for reco, words in truth.items():
        utts = sorted((u for u in new.utt_ids if new.segments[u].reco == reco), key=lambda u: new.segments[u].start)
        assert utts and " ".join(new.text[u] for u in utts) == words
    assert main(["-q", "featurize", str(out), str(tmp_path / "feats")]) == 0
    assert FeatureStore(tmp_path / "feats").keys() == new.utt_ids
    # --features without --exp
    code = main(["segment", str(data), str(tmp_path / "x"), "--features", str(exp / "features.yaml")])
    assert code == 2 and "--exp" in capsys.readouterr().err


def test_split_words():
    from asrkit.pipeline.segment import split_words

    words = [("a", 0, 10), ("b", 12, 20), ("c", 48, 60), ("d", 95, 99)]
    # middles 5, 16, 54, 97: b in the first segment, c between the two (nearer the second), d past the end
    assert split_words(words, [(0, 20), (56, 90)]) == [["a", "b"], ["c", "d"]]
    assert split_words(words, [(0, 100)]) == [["a", "b", "c", "d"]]
    assert split_words([], [(0, 5)]) == [[]] and split_words(words, []) == []


def test_bad_segments_files_are_one_line(capsys, recordings, tmp_path):
    """Overlapping segments of one speaker, and a segment past its recording's end: validate names them,
    featurize refuses the one past the end."""
    d, data, _ = recordings
    bad = tmp_path / "bad"
    DataDir(wav_scp={"spk-r1": str(d / "r1.wav")}, utt2spk={"spk-a": "spk", "spk-b": "spk", "spk-c": "spk"},
            segments={"spk-a": Segment("spk-r1", 0.0, 3.0), "spk-b": Segment("spk-r1", 2.0, 4.0),
                      "spk-c": Segment("spk-r1", 5.0, 60.0)}).save(bad)
    probs = [str(p) for p in validate(bad)]
    assert any("'spk-b' (2.0s..) overlaps 'spk-a' (..3.0s)" in p for p in probs), probs
    assert any("'spk-c' ends at 60.0s, after the end of recording 'spk-r1'" in p for p in probs), probs
    code = main(["data", "validate", str(bad)])
    cap = capsys.readouterr()
    assert code != 0 and "overlaps" in cap.out + cap.err
    code = main(["-q", "featurize", str(bad), str(tmp_path / "feats")])
    err = capsys.readouterr().err
    assert code == 1 and "spk-c" in err and "after the end of the recording" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # other speakers may talk at once
    ok = tmp_path / "ok"
    DataDir(wav_scp={"spk-r1": str(d / "r1.wav")}, utt2spk={"a-1": "a", "b-1": "b"},
            segments={"a-1": Segment("spk-r1", 0.0, 3.0), "b-1": Segment("spk-r1", 2.0, 4.0)}).save(ok)
    assert validate(ok) == []
