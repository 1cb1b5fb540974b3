"""Audio files straight to words: the steps of ``asrkit transcribe`` before the decoder.

``asrkit transcribe EXP a.wav b.flac ...`` is ``asrkit featurize`` of the files
followed by ``asrkit decode``, without a data dir or a feature store of the
user's: this module names the inputs (:func:`audio_inputs`), checks them all
before any work (:func:`check_inputs`), finds the feature config the model was
trained on (:func:`exp_feature_config`) and computes the features into a
temporary store (:func:`featurize_inputs`) with the same functions and the same
CMVN statistics that ``asrkit featurize`` uses, so that ``asrkit decode`` of
that store -- the one decoder, all its options -- gives the words.

    inputs = audio_inputs(["a.wav", "talks/a.wav", "-"])   # utt-ids a, a-2, stdin
    conf, said = exp_feature_config("exp/ctc", None, input_dim=80)
    problems = check_inputs(inputs, conf)                   # [] or one line per bad file
    featurize_inputs(inputs, conf, tmp / "feats")           # a feature store: index, cmvn.npz, conf.yaml
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from asrkit.errors import AsrkitError, AudioError, InputError, UsageError, quote

__all__ = ["EXP_FEATURES", "STDIN", "AudioInput", "audio_inputs", "check_inputs", "exp_feature_config",
           "featurize_inputs", "read_global_cmvn", "read_stdin", "use_global_cmvn"]

#: The feature config file an exp dir may hold (the training store's ``conf.yaml``).
EXP_FEATURES = "features.yaml"
#: The utterance id of audio read from standard input (``-``).
STDIN = "stdin"


@dataclass
class AudioInput:
    """One audio input: its utterance id, the file it is read from and the name errors give."""

    utt: str
    path: str
    name: str


def _stem_id(arg: str) -> str:
    """A file's stem as an utterance id: whitespace becomes ``_`` (ids are one table field)."""
    stem = Path(arg).stem if arg != "-" else STDIN
    return re.sub(r"\s+", "_", stem) or "audio"


def audio_inputs(args: Sequence[str], stdin_path: Optional[str] = None) -> tuple[list[AudioInput], list[str]]:
    """The inputs named by ``args`` (paths; ``-`` once: standard input, read into ``stdin_path``) with
    their utterance ids: the file's stem; a stem met again gets ``-2``, ``-3``... in argument order.
    Returns ``(inputs, notes)``: a note per renamed input, to tell the user."""
    if not args:
        raise UsageError("give at least one audio file (or - for a WAV on standard input)")
    if sum(1 for a in args if a == "-") > 1:
        raise UsageError("- (standard input) can be given once")
    inputs: list[AudioInput] = []
    notes: list[str] = []
    taken: dict[str, str] = {}
    for arg in args:
        if arg != "-" and (arg != arg.strip() or arg.endswith("|")):
            # a wav.scp value with a trailing | is a command to run; audio is read from files only here
            raise UsageError(f"{quote(arg)}: a file name that starts or ends with a space or ends with '|' "
                             f"cannot be read safely; rename the file")
        base = _stem_id(arg)
        utt, k = base, 1
        while utt in taken:
            k += 1
            utt = f"{base}-{k}"
        if utt != base:
            notes.append(f"{'standard input' if arg == '-' else arg}: utterance id {utt} ({base} is {taken[base]})")
        taken[utt] = "standard input" if arg == "-" else arg
        if arg == "-":
            if stdin_path is None:
                raise UsageError("- (standard input) needs a place to keep the audio")
            inputs.append(AudioInput(utt, stdin_path, "standard input"))
        else:
            inputs.append(AudioInput(utt, arg, arg))
    return inputs, notes


def read_stdin(path: str | os.PathLike, stream=None) -> int:
    """Copy standard input (bytes) to ``path``; returns the number of bytes."""
    import shutil
    import sys

    stream = stream if stream is not None else sys.stdin.buffer
    with open(path, "wb") as f:
        shutil.copyfileobj(stream, f, 1 << 20)
        return f.tell()


def exp_feature_config(exp: str | os.PathLike, features: Optional[str | os.PathLike],
                       input_dim: Optional[int]):
    """The feature config to compute an exp dir's inputs with, and a line saying where it came from.

    ``features``: a feature config YAML (``asrkit featurize --conf``) or a feature store (its
    ``conf.yaml``: the store the model was trained on). Without it: ``EXP/features.yaml`` when the exp
    dir has one, else the default 80-bin fbank (what ``asrkit featurize`` computes without ``--conf``).
    :class:`UsageError` when the config's dimension is not the model's ``input_dim``."""
    from asrkit.data.feature_store import CONF
    from asrkit.features import FeatureConfig

    exp = Path(exp)
    if features is not None:
        f = Path(features)
        if f.is_dir():
            if not (f / CONF).is_file():
                raise InputError(f"--features {f}: a folder without {CONF}; give the feature store the model was "
                                 f"trained on or a feature config YAML")
            conf, said = FeatureConfig.load(f / CONF), f"the feature config of {f}"
        elif f.is_file():
            conf, said = FeatureConfig.load(f), f"the feature config {f}"
        else:
            raise InputError(f"--features {f}: no such file or feature store")
    elif (exp / EXP_FEATURES).is_file():
        conf, said = FeatureConfig.load(exp / EXP_FEATURES), f"the feature config of {exp} ({EXP_FEATURES})"
    else:
        conf = FeatureConfig.load(None)
        said = (f"{exp} does not record its feature config; computing the default 80-bin fbank (asrkit featurize "
                f"without --conf); give --features FEATS_DIR|CONF.yaml if the model was trained on other features")
        if input_dim is not None and int(input_dim) != conf.dim:
            raise UsageError(f"{exp}: the model takes {input_dim}-dim features and does not record its feature "
                             f"config; give the store it was trained on (or its config): --features FEATS_DIR")
    if input_dim is not None and int(input_dim) != conf.dim:
        raise UsageError(f"{said}: makes {conf.dim}-dim features but the model ({exp}) takes {input_dim}-dim; "
                         f"give the feature config it was trained with (--features FEATS_DIR|CONF.yaml)")
    return conf, said


def check_inputs(inputs: Sequence[AudioInput], conf) -> list[str]:
    """One line per input that cannot be transcribed (missing, not a file, unreadable, not audio,
    empty, shorter than one feature frame); reads headers only. Empty when all are good."""
    from asrkit.audio import info
    from asrkit.features.compute import num_frames

    problems = []
    for inp in inputs:
        try:
            i = info(inp.path)
        except AsrkitError as e:
            problems.append(_named(str(e), inp))
            continue
        if i.frames <= 0:
            problems.append(f"{inp.name}: empty audio (no samples)")
        elif num_frames(int(i.frames * conf.sample_rate / i.rate), conf) == 0:
            problems.append(f"{inp.name}: {i.duration:.3f} s of audio is shorter than one feature frame "
                            f"({float(conf.options.get('frame_length', 25.0)):g} ms)")
    return problems


def _named(message: str, inp: AudioInput) -> str:
    """An audio error about ``inp``, naming it as the user gave it (not the temporary copy of stdin)."""
    if inp.name != inp.path:
        message = message.replace(inp.path, inp.name)
    return message if message.startswith(inp.name) else f"{inp.name}: {message}"


def featurize_inputs(inputs: Sequence[AudioInput], conf, out: str | os.PathLike,
                     on_input: Optional[Callable[[float], None]] = None) -> float:
    """Features of every input (resampled to ``conf.sample_rate``, computed block by block as
    ``asrkit featurize`` does) written to the feature store ``out`` (one shard, its index, CMVN
    statistics with every input its own speaker, ``conf.yaml``, ``utt2spk``); returns the seconds of
    audio. ``on_input(seconds)`` is called after each input."""
    from asrkit.audio import open_samples
    from asrkit.data.feature_store import CONF, ShardWriter, merge_shards
    from asrkit.data.table import write_table
    from asrkit.features.compute import compute_blocks
    from asrkit.io import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    with ShardWriter(out, 0) as w:
        for inp in sorted(inputs, key=lambda i: i.utt.encode()):
            try:
                with open_samples(inp.path, conf.sample_rate) as x:
                    w.begin(inp.utt, inp.utt)
                    frames = 0
                    for block in compute_blocks(len(x), x.read, conf):  # (t, D) each
                        if not np.isfinite(block).all():
                            raise AudioError(f"{inp.path}: features hold NaN or inf")
                        w.extend(block)
                        frames += block.shape[0]
                    if frames == 0:
                        raise AudioError(f"{inp.path}: {len(x) / x.rate:.3f} s is shorter than one feature frame")
                    seconds = len(x) / x.rate
                    w.commit(seconds)
            except AudioError as e:
                raise AudioError(_named(str(e), inp)) from None
            total += seconds
            if on_input is not None:
                on_input(seconds)
    merge_shards(out, 1)
    with atomic_write(out / CONF) as f:
        f.write(conf.dump())
    write_table(out / "utt2spk", {i.utt: i.utt for i in inputs})
    return total



def read_global_cmvn(source: str | os.PathLike) -> tuple:
    """``(count, sum (D,), sumsq (D,))``: the global CMVN statistics of the feature store ``source``
    (:class:`InputError` when it has none)."""
    from asrkit.data.feature_store import CMVN

    src = Path(source) / CMVN
    if not src.is_file():
        raise InputError(f"--cmvn-from {source}: no {CMVN}; give a feature store made by asrkit featurize")
    try:
        with np.load(src) as z:
            return z["global_count"], z["global_sum"], z["global_sumsq"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"--cmvn-from {source}: cannot read {CMVN}: {e}") from None


def use_global_cmvn(store: str | os.PathLike, stats: tuple, source: str | os.PathLike) -> None:
    """Replace the global CMVN statistics of the feature store ``store`` with ``stats`` (of the store
    ``source``, e.g. the training store: :func:`read_global_cmvn`), keeping its per-speaker ones: a model
    trained with global CMVN then normalizes every file the same way, whatever other files are decoded with
    it. :class:`UsageError` when the dimensions differ."""
    from asrkit.data.feature_store import CMVN
    from asrkit.io import atomic_write

    count, total, sumsq = stats
    dst = Path(store) / CMVN
    with np.load(dst) as z:
        mine = {k: z[k] for k in z.files}
    if mine["global_sum"].shape != total.shape:
        raise UsageError(f"--cmvn-from {source}: its statistics are {total.shape[0]}-dim, the features "
                         f"{mine['global_sum'].shape[0]}-dim; give the store the model was trained on")
    mine.update(global_count=count, global_sum=total, global_sumsq=sumsq)
    with atomic_write(dst, "wb") as f:
        np.savez(f, **mine)
