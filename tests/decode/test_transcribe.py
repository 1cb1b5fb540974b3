"""``asrkit transcribe EXP AUDIO...``: audio files straight to words, the same words as
``asrkit featurize`` + ``asrkit decode`` of the same files; resampling, standard input, long files
decoded in pieces, the exp dir's own feature config, and the refusals."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asrkit.cli.main import main
from asrkit.corpora.tiny import tiny_root
from asrkit.data import DataDir, FeatureStore
from asrkit.data.table import read_table
from asrkit.features import FeatureConfig, featurize

from decode_util import DIM, make_ctc_exp

#: 20 mel bins: the decode tests' models take DIM = 20 features
CONF = {"type": "fbank", "num_mel_bins": DIM}
N_FILES = 4


def _data_dir(path: Path, wavs: dict[str, str], text: dict[str, str] | None = None) -> Path:
    DataDir(wav_scp=dict(wavs), utt2spk={u: u for u in wavs}, text=text).save(path)
    return path


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _lines(out: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line.partition(" ")[2] for line in out.splitlines()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The first test files of the tiny corpus (16 kHz ogg), their feature store, a char CTC model
    without CMVN and one with global CMVN (both random, sharpened: many different outputs)."""
    d = tmp_path_factory.mktemp("transcribe")
    root = tiny_root()
    wav = read_table(root / "test" / "wav.scp")
    utts = sorted(wav)[:N_FILES]
    files = {u: str(root / wav[u]) for u in utts}
    conf = FeatureConfig.from_dict(dict(CONF))
    (d / "fb20.yaml").write_text(conf.dump())
    text = read_table(root / "test" / "text")
    featurize(_data_dir(d / "data", files, {u: text[u] for u in utts}), d / "feats", conf)
    return {"dir": d, "files": files, "conf": conf, "feats": d / "feats",
            "exp": make_ctc_exp(d / "exp", kind="char", cmvn="global"),
            "exp_raw": make_ctc_exp(d / "exp_raw", kind="char", cmvn=None)}


def test_same_words_as_featurize_and_decode(capsys, setup):
    exp, feats = str(setup["exp"]), str(setup["feats"])
    files = list(setup["files"].values())
    for fmt in ("text", "jsonl", "ctm"):
        code, decoded, err = _run(capsys, "-q", "decode", exp, feats, "--device", "cpu", "--format", fmt)
        assert code == 0, err
        code, out, err = _run(capsys, "-q", "transcribe", exp, *files, "--features", feats, "--device", "cpu",
                              "--format", fmt)
        assert code == 0, err
        assert out == decoded
        if fmt == "text":
            hyps = _lines(out)
            assert sorted(hyps) == sorted(setup["files"])  # utterance ids: the files' stems
            assert len(set(hyps.values())) == N_FILES and all(hyps.values())  # not a constant output
        if fmt == "jsonl":
            assert all("times" in json.loads(line) for line in out.splitlines())  # word times of a CTC model
    # a feature config YAML does the same as the store it made
    code, out2, err = _run(capsys, "-q", "transcribe", exp, *files, "--features", str(setup["dir"] / "fb20.yaml"),
                           "--device", "cpu", "--format", "ctm")
    assert code == 0 and out2 == out


def test_beam_and_lm_go_through_decode(capsys, setup, tmp_path):
    from asrkit.lm import build_lm

    exp, feats = str(setup["exp"]), str(setup["feats"])
    files = list(setup["files"].values())
    (tmp_path / "lm.txt").write_text("and i refuse to let that happen\nthey need our help right now\n" * 3)
    build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2, progress=False)
    opts = ["--device", "cpu", "--beam", "8", "--lm", str(tmp_path / "lm.arpa"), "--backend", "pyctcdecode"]
    code, decoded, err = _run(capsys, "-q", "decode", exp, feats, *opts)
    assert code == 0, err
    code, out, err = _run(capsys, "-q", "transcribe", exp, *files, "--features", feats, *opts)
    assert code == 0, err
    assert out == decoded and len(out.splitlines()) == N_FILES


def _wav(path: Path, x: np.ndarray, rate: int) -> Path:
    sf.write(str(path), x, rate, subtype="PCM_16")
    return path


def test_other_sample_rates_are_resampled(capsys, setup, tmp_path):
    from asrkit.audio import load, resample

    exp, (utt, src) = str(setup["exp_raw"]), next(iter(setup["files"].items()))
    x, rate = load(src)
    assert rate == 16000
    files = {f"r{r}": str(_wav(tmp_path / f"r{r}.wav", resample(x, 16000, r), r)) for r in (8000, 44100)}
    featurize(_data_dir(tmp_path / "data", files), tmp_path / "feats", setup["conf"])  # featurize resamples too
    code, decoded, err = _run(capsys, "-q", "decode", exp, str(tmp_path / "feats"), "--device", "cpu")
    assert code == 0, err
    code, out, err = _run(capsys, "-q", "transcribe", exp, *files.values(), "--features", str(setup["feats"]),
                          "--device", "cpu")
    assert code == 0, err
    assert out == decoded
    hyps = _lines(out)
    assert set(hyps) == {"r8000", "r44100"} and all(hyps.values())
    # computed at the model's 16 kHz: as many frames as the original's (the resampler may add a sample)
    code, out, err = _run(capsys, "-q", "transcribe", exp, *files.values(), "--features", str(setup["feats"]),
                          "--device", "cpu", "--format", "jsonl")
    frames = FeatureStore(setup["feats"]).num_frames(utt)
    assert code == 0 and [abs(json.loads(line)["frames"] - frames) <= 1 for line in out.splitlines()] == [True] * 2


def test_standard_input(capsys, setup, monkeypatch, tmp_path):
    from asrkit.audio import load

    exp = str(setup["exp"])
    src = next(iter(setup["files"].values()))
    wav = _wav(tmp_path / "one.wav", load(src)[0], 16000)
    code, from_file, err = _run(capsys, "-q", "transcribe", exp, str(wav), "--features", str(setup["feats"]),
                                "--device", "cpu")
    assert code == 0, err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(wav.read_bytes())))
    code, out, err = _run(capsys, "-q", "transcribe", exp, "-", "--features", str(setup["feats"]), "--device", "cpu")
    assert code == 0, err
    assert out == from_file.replace("one ", "stdin ", 1)
    # not audio on stdin: one line naming standard input
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello, not audio\n")))
    code, out, err = _run(capsys, "transcribe", exp, "-", "--features", str(setup["feats"]), "--device", "cpu")
    assert code == 1 and out == "" and "standard input" in err and len(err.strip().splitlines()) == 1
    assert "stdin.wav" not in err  # the temporary copy is not named


def test_clashing_stems_get_distinct_ids(capsys, setup, tmp_path):
    from asrkit.audio import load

    src = next(iter(setup["files"].values()))
    x = load(src)[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = _wav(tmp_path / "a" / "talk.wav", x, 16000)
    two = _wav(tmp_path / "b" / "talk.wav", x[: len(x) // 2], 16000)
    code, out, err = _run(capsys, "transcribe", str(setup["exp"]), str(one), str(two), "--features",
                          str(setup["feats"]), "--device", "cpu")
    assert code == 0, err
    assert sorted(_lines(out)) == ["talk", "talk-2"]
    assert f"{two}: utterance id talk-2 (talk is {one})" in " ".join(err.split())


def test_long_file_is_decoded_in_pieces_with_words_and_times_in_place(capsys, setup, tmp_path):
    """Four files joined with a second of silence between them, decoded in pieces of at most 6 s:
    the cuts fall into the silences, the units are those of the pieces decoded one by one, and the
    pieces' word times, shifted by where each piece starts, are the long file's."""
    import torch

    from asrkit.audio import load
    from asrkit.decode.longform import loudness, pause_cuts
    from asrkit.features import compute

    exp, conf = str(setup["exp_raw"]), setup["conf"]
    gap = np.zeros(16000, np.float32)
    parts = [gap]
    for src in setup["files"].values():
        parts += [load(src)[0], gap]
    x = np.concatenate(parts)
    long = _wav(tmp_path / "long.wav", x, 16000)
    seconds = len(x) / 16000
    feats = compute(sf.read(str(long), dtype="float32")[0], conf)  # (T, D), what transcribe computes
    cuts = pause_cuts(loudness(torch.from_numpy(feats)), 600, multiple=2)  # --chunk-seconds 6, subsampling 2
    assert len(cuts) >= 3
    edges = np.concatenate([[0], np.cumsum([len(p) for p in parts])]) / 16000  # the parts' (start, end) times
    silences = [(edges[k], edges[k + 1]) for k in range(0, len(parts), 2)]      # the gaps: parts 0, 2, 4, ...
    for c in cuts:
        assert any(a <= c * 0.01 <= b for a, b in silences), f"cut at {c * 0.01}s is not in a silence {silences}"

    code, out, err = _run(capsys, "-q", "transcribe", exp, str(long), "--features", str(setup["feats"]),
                          "--device", "cpu", "--chunk-seconds", "6", "--format", "jsonl")
    assert code == 0, err
    whole = json.loads(out)
    assert whole["frames"] == feats.shape[0] and whole["hyp"]
    times = whole["times"]
    assert times == sorted(times) and 0 <= times[0][0] and times[-1][1] <= seconds + 0.01

    # the pieces as files of their own: the same frames (snip_edges: frame i = samples 160 i .. 160 i + 400)
    bounds = list(zip([0, *cuts], [*cuts, feats.shape[0]]))
    pieces = [str(_wav(tmp_path / f"piece{k}.wav", x[a * 160:(b - 1) * 160 + 400], 16000))
              for k, (a, b) in enumerate(bounds)]
    code, out, err = _run(capsys, "-q", "transcribe", exp, *pieces, "--features", str(setup["feats"]),
                          "--device", "cpu", "--chunk-seconds", "0", "--format", "jsonl")
    assert code == 0, err
    got = {json.loads(line)["utt"]: json.loads(line) for line in out.splitlines()}
    units = [u for k in range(len(bounds)) for u in got[f"piece{k}"]["units"]]
    assert whole["units"] == units
    # the same letters; each word of the long file starts where a piece's word starts and ends where one
    # ends (a word at a piece's end and one at the next piece's start are one word when no '|' parts them)
    assert whole["hyp"].replace(" ", "") == "".join(got[f"piece{k}"]["hyp"].replace(" ", "") for k in range(len(bounds)))
    starts = {round(s + a * 0.01, 2) for k, (a, _) in enumerate(bounds) for s, _ in got[f"piece{k}"]["times"]}
    ends = {round(e + a * 0.01, 2) for k, (a, _) in enumerate(bounds) for _, e in got[f"piece{k}"]["times"]}
    assert {round(s, 2) for s, _ in times} <= starts and {round(e, 2) for _, e in times} <= ends
    assert len(times) >= 2


def test_exp_trained_by_asrkit_records_its_features(capsys, setup, tmp_path):
    """`asrkit train` keeps the training store's feature config (EXP/features.yaml): transcribe needs no
    --features; a model without one and other than 80-dim is refused in one line."""
    feats = str(setup["feats"])
    exp = tmp_path / "exp"
    code, _, err = _run(capsys, "-q", "train", "ctc", "--train", feats, "--dev", feats, "--out", str(exp),
                        "--device", "cpu", "train.epochs=1", "data.max_frames=2000", "train.tensorboard=false",
                        "model.hidden=8", "model.layers=1", "model.subsampling=2", "model.conv_channels=2",
                        "units.kind=char")
    assert code == 0, err
    assert FeatureConfig.load(exp / "features.yaml") == setup["conf"]
    code, decoded, err = _run(capsys, "-q", "decode", str(exp), feats, "--device", "cpu")
    assert code == 0, err
    code, out, err = _run(capsys, "transcribe", str(exp), *setup["files"].values(), "--device", "cpu")
    assert code == 0, err
    assert out == decoded and "features.yaml" in err
    # the decode tests' exp dirs record nothing and take 20-dim features: refused before any work
    code, out, err = _run(capsys, "transcribe", str(setup["exp"]), *setup["files"].values(), "--device", "cpu")
    assert code == 2 and out == "" and "--features" in err and len(err.strip().splitlines()) == 1
    # a config of another dimension than the model's
    (tmp_path / "fb40.yaml").write_text("type: fbank\nnum_mel_bins: 40\n")
    code, out, err = _run(capsys, "transcribe", str(exp), *setup["files"].values(), "--features",
                          str(tmp_path / "fb40.yaml"), "--device", "cpu")
    assert code == 2 and "40-dim" in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_one_line_each(capsys, setup, tmp_path):
    exp, feats = str(setup["exp"]), str(setup["feats"])
    good = next(iter(setup["files"].values()))
    (tmp_path / "notes.txt").write_text("not audio at all\n")
    (tmp_path / "zero.wav").write_bytes(b"")
    _wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    _wav(tmp_path / "blip.wav", np.zeros(100, np.float32), 16000)
    (tmp_path / "folder.wav").mkdir()
    bad = ["missing.wav", "notes.txt", "zero.wav", "empty.wav", "blip.wav", "folder.wav"]
    code, out, err = _run(capsys, "transcribe", exp, good, *(str(tmp_path / b) for b in bad), "--features", feats,
                          "--device", "cpu")
    lines = err.strip().splitlines()
    assert code == 1 and out == ""
    assert len(lines) == len(bad), err
    for name, line, what in zip(bad, lines, ["no such audio file", "cannot decode audio", "empty audio file",
                                             "empty audio", "shorter than one feature frame", "is a directory"]):
        assert name in line and what in line, line
    assert "Traceback" not in err
    (tmp_path / "cmd |").write_bytes(b"")
    code, out, err = _run(capsys, "transcribe", exp, str(tmp_path / "cmd |"), "--features", feats)
    assert code == 2 and "ends with '|'" in err  # never run as a command
    code, out, err = _run(capsys, "transcribe", exp, "-", "-", "--features", feats)
    assert code == 2 and "once" in err
    code, out, err = _run(capsys, "transcribe", exp, good, "--features", feats, "--format", "xml")
    assert code == 2 and "--format" in err
    code, out, err = _run(capsys, "transcribe", str(tmp_path / "noexp"), good)
    assert code == 2 and "no such exp dir" in err


def _transformer_exp(path: Path) -> Path:
    """A tiny real transformer exp dir (random weights, char units), saved the way `asrkit train` saves it."""
    import torch

    from asrkit.data.tokenizer import Tokenizer, train_tokenizer
    from asrkit.models import build_model
    from asrkit.train.config import defaults, save_config

    path.mkdir(parents=True)
    (path / "text").write_text("u1 and i refuse to let that happen\nu2 they need our help right now\n")
    train_tokenizer("char", path / "text", path / "units")
    tok = Tokenizer.load(path / "units")
    cfg = defaults("transformer")
    cfg["units"]["kind"] = "char"
    cfg["data"]["cmvn"] = "global"
    cfg["model"] = {"type": "transformer", "impl": "scratch", "input_dim": DIM, "num_classes": tok.vocab_size,
                    "hidden": 16, "heads": 2, "ff_mult": 2, "encoder_layers": 1, "decoder_layers": 1,
                    "dropout": 0.0, "subsampling": 4, "conv_channels": 4}
    torch.manual_seed(0)
    model = build_model(cfg["model"])
    cfg["model"] = dict(model.config)
    save_config(cfg, path / "config.yaml")
    (path / "checkpoints").mkdir()
    torch.save({"model": model.state_dict(), "epoch": 1}, path / "checkpoints" / "best.pt")
    return path


@pytest.mark.parametrize("kind", ["phone", "bpe", "transformer"])
def test_every_model_kind(capsys, setup, tmp_path, kind):
    """A phone CTC model (phones without an LM, with a warning; words through its lexicon with --lm), a bpe
    CTC model and an attention model: transcribe writes what decode writes for the same files."""
    from asrkit.lm import build_lm

    feats, files = str(setup["feats"]), list(setup["files"].values())
    if kind == "transformer":
        exp = _transformer_exp(tmp_path / "exp")
        runs = [["--beam", "3"], ["--format", "jsonl"]]
    else:
        exp = make_ctc_exp(tmp_path / "exp", kind=kind, cmvn="global")
        (tmp_path / "lm.txt").write_text("a cat sat on the mat\nthe cat sat\na mat\n" * 2)
        build_lm(tmp_path / "lm.txt", tmp_path / "lm.arpa", 2, progress=False)
        runs = [[], ["--lm", str(tmp_path / "lm.arpa"), "--beam", "4", "--format", "ctm"]]
        if kind == "bpe":  # flashlight's LM search of this random bpe model differs from run to run (ties)
            runs[1] += ["--backend", "pyctcdecode"]
    for extra in runs:
        code, decoded, err = _run(capsys, "-q", "decode", str(exp), feats, "--device", "cpu", *extra)
        assert code == 0, err
        code, out, err = _run(capsys, "transcribe", str(exp), *files, "--features", feats, "--device", "cpu", *extra)
        assert code == 0, err
        ids = {json.loads(line)["utt"] if line.startswith("{") else line.split()[0] for line in out.splitlines()}
        assert out == decoded
        # a ctm has no line for an utterance without words (a random model's LM search may find none)
        assert ids <= set(setup["files"]) if "ctm" in extra else ids == set(setup["files"])
        warned = "phone model: without --lm it writes phones" in " ".join(err.split())
        assert warned == (kind == "phone" and "--lm" not in extra)
    if kind == "phone":  # the LM's words, placed in time
        assert {line.split()[4] for line in out.splitlines()} <= {"a", "cat", "sat", "on", "the", "mat"}


def test_wav_flac_and_sphere_give_the_same_words(capsys, setup, tmp_path):
    """One recording as 16-bit WAV, FLAC and NIST SPHERE (big-endian PCM): the same samples, so the
    same words (the OGG original went through the other tests)."""
    from asrkit.audio import load

    RATE = 16000
    x = load(next(iter(setup["files"].values())))[0]
    pcm = np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16)
    _wav(tmp_path / "a.wav", x, RATE)
    sf.write(str(tmp_path / "b.flac"), x, RATE, subtype="PCM_16")
    head = "\n".join(["NIST_1A", "   1024", f"sample_count -i {len(pcm)}", f"sample_rate -i {RATE}",
                      "channel_count -i 1", "sample_n_bytes -i 2", "sample_byte_format -s2 10",
                      "sample_coding -s3 pcm", "end_head"]).encode() + b"\n"
    (tmp_path / "c.sph").write_bytes(head + b" " * (1024 - len(head)) + pcm.astype(">i2").tobytes())
    code, out, err = _run(capsys, "-q", "transcribe", str(setup["exp_raw"]), *(str(tmp_path / f) for f in
                          ("a.wav", "b.flac", "c.sph")), "--features", str(setup["feats"]), "--device", "cpu")
    assert code == 0, err
    hyps = _lines(out)
    assert sorted(hyps) == ["a", "b", "c"] and hyps["a"] and hyps["a"] == hyps["b"] == hyps["c"]


def test_cmvn_from_a_store_makes_files_independent(capsys, setup, tmp_path):
    """Global CMVN over the files given makes a file's words depend on the others; --cmvn-from takes the
    statistics of a store (here the store of all four files), so a file alone gives what it gives in the
    whole set, and the whole set gives what decode of that store gives."""
    exp, feats = str(setup["exp"]), str(setup["feats"])
    files = list(setup["files"].values())
    opts = ["--features", feats, "--device", "cpu"]
    code, decoded, err = _run(capsys, "-q", "decode", exp, feats, "--device", "cpu")
    assert code == 0, err
    code, alone, err = _run(capsys, "-q", "transcribe", exp, files[1], *opts)
    assert code == 0, err
    assert alone.strip() != _lines(decoded)[Path(files[1]).stem] and alone not in decoded  # its own statistics
    code, alone, err = _run(capsys, "-q", "transcribe", exp, files[1], *opts, "--cmvn-from", feats)
    assert code == 0, err
    assert alone in decoded
    code, together, err = _run(capsys, "-q", "transcribe", exp, *files, *opts, "--cmvn-from", feats)
    assert code == 0 and together == decoded
    # a model without global CMVN, and a folder without statistics
    code, out, err = _run(capsys, "transcribe", str(setup["exp_raw"]), files[1], *opts, "--cmvn-from", feats)
    assert code == 2 and "data.cmvn" in err
    code, out, err = _run(capsys, "transcribe", exp, files[1], *opts, "--cmvn-from", str(tmp_path))
    assert code == 1 and "cmvn.npz" in err and len(err.strip().splitlines()) == 1
