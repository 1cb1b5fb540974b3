"""The demo pipeline (``asrkit demo``): the embedded tiny corpus, end to end.

Stages, each writing under one folder ``OUT`` (default ``exp/demo``) and
skipped when its output is already complete, so an interrupted or repeated
run continues where it stopped::

    corpus    OUT/data/{train,dev,test}       asrkit corpus tiny
    features  OUT/feats/{train,dev,test}      asrkit featurize (fbank 80, CMVN stats)
    train     OUT/exp/ctc_phone               asrkit train ctc (Conformer-CTC, phone units, scratch layers)
    decode    OUT/exp/ctc_phone/decode_test/hyp.txt     asrkit decode --warps 0.9,0.95,1,1.05,1.1 (greedy)
    score     OUT/exp/ctc_phone/decode_test/{ref.txt,per.txt,per_utt.txt}
    lm        OUT/exp/lm3.arpa                asrkit lm build (3-gram on the corpus's LM text)
    lm decode OUT/exp/ctc_phone/lm_tuning.yaml, decode_test/{hyp_lex.txt,hyp_lm.txt,hyp_lm.ctm,words.txt}
              asrkit tune on dev, then asrkit decode --beam 20 --lm (words through the CMU lexicon);
              also the lexicon alone (LM weight 0, its word bonus tuned on dev too)

Training is a fixed amount of work: :data:`DEMO_EPOCHS` epochs of
:data:`DEMO_CONFIG` with torch on :data:`DEMO_THREADS` CPU thread(s), so a
slower or busier machine takes longer but prints the same numbers. A time
budget (``minutes``) is an opt-in: it stops training early, the best
checkpoint so far then decodes, and a later run resumes the schedule. The
result is the phone error rate (PER) on the test set, overall, for the
voices heard in training and for the voice heard only in test, and the word
error rate (WER) of decoding to words: greedy CTC gives phones only, so the
words come from the lexicon-constrained beam search (flashlight), once with
the lexicon alone and once with the 3-gram LM (its weight and word bonus tuned
on dev), side by side with the PER of each search.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from asrkit import log
from asrkit.errors import TrainingError, UsageError
from asrkit.io import atomic_write

if TYPE_CHECKING:  # imported where used: every asrkit command imports this module (cli.demo's defaults)
    from asrkit.score import Counts

__all__ = ["DEMO_CONFIG", "DEMO_EPOCHS", "DEMO_THREADS", "DEMO_WARPS", "DemoResult", "GroupScore", "SearchScore",
           "demo_table", "demo_train_config", "run_demo", "words_table"]

SPLITS = ("train", "dev", "test")
EXP_NAME = "ctc_phone"

#: The demo's model and training settings (dotted config overrides of the ctc defaults).
DEMO_CONFIG: dict[str, Any] = {
    "model.impl": "scratch",
    "model.subsampling": 4,
    "model.encoder": "conformer",
    "model.hidden": 144,
    "model.layers": 4,
    "model.heads": 4,
    "model.conv_kernel": 15,
    # no dropout: 15 epochs leave the model underfit (train loss 0.40 with 0.1, 0.21 without), and
    # without it the test PER is 2 points lower over three seeds (docs/demo.md, "No dropout")
    "model.dropout": 0.0,
    # intermediate CTC on the middle (2nd) layer, weight 0.3: over three seeds 0.6-1.0 point lower
    # dev and test PER at the same epochs (docs/demo.md, "Intermediate CTC"); no extra parameters
    "model.inter_ctc_weight": 0.3,
    "units.kind": "phone",
    "data.cmvn": "global",
    # small batches, ~5 utterances: 72 updates per epoch instead of 38 at about the same speed; the
    # model fits in 15 epochs (train loss 0.11 against 0.21) and test PER drops 2.5 points (docs/demo.md,
    # "Smaller batches")
    "data.max_frames": 2000,
    "features.specaugment": False,
    # VTLP and time stretching of the training features: a little more robust to a voice not heard
    # in training, at the same epochs and updates (docs/demo.md, "Augmentation")
    "features.vtlp": True,
    "features.vtlp_warp": [0.9, 1.1],
    "features.time_stretch": True,
    "features.stretch_rate": [0.8, 1.2],
    # with the intermediate CTC loss a higher peak rate trains better: 3e-3 against 2e-3, over three
    # seeds 1.0 point lower test PER and 1.7 lower dev PER (docs/demo.md, "A higher learning rate")
    "optim.lr": 3e-3,
    "optim.warmup_steps": 100,
    "optim.scheduler": "cosine",
    "train.tensorboard": False,
    "train.save_every_min": 1.0,
    "train.keep_epochs": 2,   # epoch-N.pt of the last 2 epochs (each ~25 MB with the optimizer state)
}

#: Training epochs of the demo (the same on every machine; ``epochs=`` changes it).
DEMO_EPOCHS = 15

#: Test-time VTLP of every decode (greedy, and the emissions the LM searches and their tuning read):
#: the model runs on the features warped by each factor, training's ``features.vtlp_warp`` range,
#: and the searches read the mean log-probabilities (asrkit decode --warps). Chosen on voices the
#: model never heard that are not in the test set (festival's MBROLA voices reading train sentences,
#: six seeds: 40.69 -> 39.24% PER); on the heard dev voices it costs 0.2 points (docs/demo.md,
#: "Test-time VTLP"). ``warps=(1.0,)`` or ``()``: one plain pass.
DEMO_WARPS = (0.9, 0.95, 1.0, 1.05, 1.1)

#: torch CPU threads while the demo runs (``threads=`` changes it). One thread
#: keeps its speed when other jobs share the cores, where two threads wait on
#: each other (benchmarks/threads_bench.py).
DEMO_THREADS = 1


class _OutOfTime(Exception):
    """Raised from the trainer's step hook when the opt-in time budget is spent."""


@dataclass
class GroupScore:
    """Phone error counts of a group of test utterances (``counts.ref``: reference phones)."""

    name: str
    speakers: list[str]
    utts: int
    counts: Counts

    @property
    def per(self) -> Optional[float]:
        """PER in percent (None: errors against no reference phones)."""
        return self.counts.rate


#: The LM decode: beam, LM order and the (small) grid tuned on dev.
LM_BEAM = 20
LM_ORDER = 3
LM_WEIGHTS = (0.5, 1.0, 1.5, 2.0)
WORD_BONUSES = (-1.0, 0.0, 1.0)
#: Word bonuses tried for the lexicon-only search (LM weight 0): without an LM
#: score per word, short words fill the hypothesis unless a penalty stops them.
LEXICON_BONUSES = (-8.0, -6.0, -4.0, -2.0, 0.0)


@dataclass
class SearchScore:
    """WER and PER of one search over the test set (WER None: phones only);
    ``per_held_out``: its PER on the voice heard only in test (None: no such voice)."""

    search: str
    hyp: str
    wer: Optional[float]
    per: float
    per_held_out: Optional[float] = None


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}"


def _round(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(x, 2)


@dataclass
class DemoResult:
    """What :func:`run_demo` did and measured."""

    out: Path
    exp: Path
    hyp: Path
    ref: Path
    report: Path
    per_utt: Path
    groups: list[GroupScore]
    speakers: list[GroupScore]
    epochs: int
    epochs_planned: int
    out_of_time: bool
    impl: str = "scratch"
    threads: Optional[int] = None
    train_frames_per_s: Optional[float] = None
    seconds: dict[str, float] = field(default_factory=dict)
    searches: list[SearchScore] = field(default_factory=list)
    warps: tuple[float, ...] = ()

    @property
    def per(self) -> Optional[float]:
        return self.groups[0].per

    def to_json(self) -> dict[str, Any]:
        def group(g: GroupScore) -> dict[str, Any]:
            return {"name": g.name, "speakers": g.speakers, "utts": g.utts, **asdict(g.counts),
                    "errors": g.counts.errors, "per": _round(g.per)}

        return {
            "out": str(self.out), "exp": str(self.exp), "hyp": str(self.hyp), "ref": str(self.ref),
            "report": str(self.report), "per_utt": str(self.per_utt), "per": _round(self.per),
            "groups": [group(g) for g in self.groups], "speakers": [group(g) for g in self.speakers],
            "epochs": self.epochs, "epochs_planned": self.epochs_planned, "out_of_time": self.out_of_time,
            "impl": self.impl, "threads": self.threads,
            "train_frames_per_s": None if self.train_frames_per_s is None else round(self.train_frames_per_s),
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()}, "warps": list(self.warps),
            "searches": [{"search": x.search, "hyp": x.hyp, "wer": _round(x.wer), "per": _round(x.per),
                          "per_held_out": _round(x.per_held_out)} for x in self.searches],
        }


# ---------------------------------------------------------------------- stages
def _settings_match(path: Path, want: dict) -> bool:
    """Whether the JSON settings file ``path`` (a stage's record of how it made its output) holds
    ``want``; False when it is missing or unreadable."""
    try:
        return json.loads(path.read_text()) == want
    except (OSError, ValueError):
        return False


def _stage_corpus(out: Path, utts_per_split: Optional[int]) -> None:
    """``OUT/data``: the tiny corpus (optionally a spread-out subset of each split)."""
    from asrkit.corpora.tiny import write_tiny
    from asrkit.data import DataDir

    data = out / "data"
    marker = data / ".demo-done"
    want = {"utts_per_split": utts_per_split}
    if marker.exists():
        if _settings_match(marker, want):
            log.info(f"corpus: {data} is there")
            return
        raise UsageError(f"{data}: made with other demo settings ({marker.read_text().strip()}); "
                         f"use another --out")
    counts = write_tiny(data)
    if utts_per_split is not None:
        for split in SPLITS:
            d = DataDir.load(data / split)
            ids = d.utt_ids
            step = max(1, len(ids) // utts_per_split)
            d.subset(ids[::step][:utts_per_split]).save(data / split)
            counts[split] = min(utts_per_split, len(ids[::step]))
    with atomic_write(marker) as f:
        json.dump(want, f)
    log.info(f"corpus: {data}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " utterances")


def _stage_features(out: Path, jobs: int) -> None:
    from asrkit.features.pipeline import featurize

    for split in SPLITS:
        store = out / "feats" / split
        if (store / "index.tsv").exists():
            log.info(f"features: {store} is there")
            continue
        r = featurize(out / "data" / split, store, jobs=jobs)
        log.info(f"features: {store}: {r.utterances} utterances, {r.seconds_audio / 60:.1f} min of audio")


def demo_train_config(epochs: int = DEMO_EPOCHS, device: str = "cpu", seed: int = 0,
                      overrides: Sequence[str] = ()) -> dict:
    """The demo's resolved ``ctc`` training config: :data:`DEMO_CONFIG`, the
    epochs, device and seed, then ``overrides`` (``model.impl=native``);
    checked (the model section too) before any work."""
    from asrkit.train import check_config, load_config
    from asrkit.train.config import parse_overrides

    pairs = list(DEMO_CONFIG.items()) + [("train.epochs", epochs), ("train.device", device),
                                          ("train.seed", seed)]
    cfg = load_config("ctc", None, pairs + parse_overrides(list(overrides)))
    check_config(cfg)
    return cfg


def _stage_train(out: Path, exp: Path, cfg: dict, deadline: Optional[float]) -> tuple[int, bool]:
    """Train (or resume) until the schedule ends, or the opt-in deadline
    (``time.monotonic()`` seconds) passes. Returns (epochs completed, stopped
    by the deadline)."""
    from asrkit.train import load_checkpoint, train

    def _cap(step: int, epoch: int, position: int) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime()

    last = exp / "checkpoints" / "last.pt"
    if last.exists():
        ck = load_checkpoint(last)
        done = ck["epoch"] >= cfg["train"]["epochs"] or ck.get("stopped_early", False)
        if done and (exp / "checkpoints" / "best.pt").exists():
            log.info(f"train: {exp} finished its {ck['epoch']} epochs")
            return int(ck["epoch"]), False
    try:
        hooks = {"after_step": _cap} if deadline is not None else None
        r = train(cfg, out / "feats" / "train", out / "feats" / "dev", exp, resume=True, hooks=hooks)
        return int(r.epochs), False
    except _OutOfTime:
        ck = load_checkpoint(last) if last.exists() else None
        epochs = int(ck["epoch"]) if ck else 0
        if not (exp / "checkpoints" / "best.pt").exists():
            raise TrainingError("the time budget ran out before the first epoch ended; give more --minutes or "
                                "leave it out (the run resumes where it stopped)") from None
        log.warn(f"train: the time budget ran out after epoch {epochs} of {cfg['train']['epochs']}; decoding "
                 f"with the best checkpoint so far (run the demo again to continue training)")
        return epochs, True


def _stage_decode(exp: Path, store: Path, hyp: Path, device: str, warps: Sequence[float]) -> None:
    """Greedy hypotheses of the test set (with test-time VTLP over ``warps``), unless ``hyp`` is
    newer than the best checkpoint and was made with the same warps (``hyp.txt.json``)."""
    from asrkit.data import FeatureStore
    from asrkit.decode import greedy_decode, load_exp, write_hypotheses

    best = exp / "checkpoints" / "best.pt"
    made = hyp.with_name(hyp.name + ".json")
    want = {"warps": list(warps)}
    if hyp.exists() and hyp.stat().st_mtime > best.stat().st_mtime and _settings_match(made, want):
        log.info(f"decode: {hyp} is up to date")
        return
    fs = FeatureStore(store)
    loaded = load_exp(exp, checkpoint="best", device=device, task="ctc")
    with log.progress() as bar:
        task = bar.add_task("decode test", total=len(fs))
        hyps = greedy_decode(loaded, fs, batch_size=16, on_batch=lambda n: bar.advance(task, n), warps=warps)
        with atomic_write(hyp) as f:
            write_hypotheses(hyps, f, "text", flush=False)
    with atomic_write(made) as f:
        json.dump(want, f)


def _group(name: str, result, idx: list[int], speakers: list[str]) -> GroupScore:
    """The utterances ``idx`` of a :class:`asrkit.score.ScoreResult` as one group."""
    from asrkit.score import Counts

    counts = Counts.from_arrays(result.utt_counts[idx], result.ref_lens[idx], result.hyp_lens[idx])
    return GroupScore(name, speakers, len(idx), counts)


def _stage_score(out: Path, hyp: Path, ref: Path, report: Path, per_utt: Path) -> tuple[list[GroupScore],
                                                                                          list[GroupScore]]:
    from asrkit.corpora.synth import speaker_voice
    from asrkit.data.table import read_table, write_table
    from asrkit.score import read_transcripts, score
    from asrkit.score import report as rep

    test = out / "data" / "test"
    phones = read_table(test / "text.phones")
    write_table(ref, {u: " ".join(p for p in v.split() if p != "sil") for u, v in phones.items()})
    utt2spk = read_table(test / "utt2spk")
    # by voice (the synthesizer's voice of speaker VOICE-vN): a subset of train (utts_per_split) may
    # miss a variant of a voice it has
    seen = {speaker_voice(s) for s in read_table(out / "data" / "train" / "utt2spk").values()}
    refs = read_transcripts(ref, "text").utts
    hyps = read_transcripts(hyp, "text").utts
    result = score(refs, hyps, utt2spk=utt2spk, ref_name=str(ref), hyp_name=str(hyp))
    spk_of = [utt2spk[u] for u in result.ids]
    all_idx = list(range(result.utts))
    seen_idx = [i for i, s in enumerate(spk_of) if speaker_voice(s) in seen]
    new_idx = [i for i, s in enumerate(spk_of) if speaker_voice(s) not in seen]
    seen_spk = sorted({spk_of[i] for i in seen_idx})
    new_spk = sorted({spk_of[i] for i in new_idx})
    groups = [_group("test, all voices", result, all_idx, sorted(set(spk_of)))]
    if seen_idx and new_idx:
        groups.append(_group("voices heard in training", result, seen_idx, seen_spk))
        groups.append(_group("voice heard only in test", result, new_idx, new_spk))
    speakers = [GroupScore(s.speaker, [s.speaker], s.utts, s.words) for s in result.per_speaker()]
    with atomic_write(per_utt) as f:
        rep.write_per_utt(result, f)
    with atomic_write(report) as f:
        f.write(rep.counts_line("PER", result.words) + "\n\n")
        f.write(rep.render_plain(demo_table(groups, "PER by voice group")) + "\n\n")
        f.write(rep.render_plain(demo_table(speakers, "PER by speaker", new_spk)) + "\n")
    return groups, speakers


def _stage_lm(out: Path) -> Path:
    """``OUT/exp/lm3.arpa``: a 3-gram on the corpus's LM text (no test sentences in it)."""
    from asrkit.lm import build_lm

    lm = out / "exp" / f"lm{LM_ORDER}.arpa"
    if lm.exists():
        log.info(f"lm: {lm} is there")
        return lm
    stats = build_lm(out / "data" / "lm_text.txt", lm, LM_ORDER, progress=False)
    log.info(f"lm: {lm} ({getattr(stats, 'sentences', '?')} sentences)")
    return lm


def _stage_lm_decode(out: Path, exp: Path, lm: Path, dec: Path, ref_phones: Path,
                     device: str, held_out: Sequence[str] = (), warps: Sequence[float] = ()) -> list[SearchScore]:
    """Tune the LM weight / word bonus on dev, decode test with the lexicon
    alone and with the LM, score words and phones (all voices, and the
    ``held_out`` speakers alone); the greedy hypothesis (``hyp.txt``) is
    scored for phones only."""
    from asrkit.data import FeatureStore
    from asrkit.data.table import read_table
    from asrkit.decode import BeamDecoder, iter_outputs, load_exp, write_hypotheses
    from asrkit.decode.beam import search_outputs
    from asrkit.decode.timing import output_frame_seconds
    from asrkit.pipeline.tune import search_grid, write_tuning
    from asrkit.score import score

    loaded = load_exp(exp, checkpoint="best", device=device, task="ctc")

    def emissions(split: str):
        fs = FeatureStore(out / "feats" / split)
        return list(iter_outputs(loaded.model, fs, cmvn=loaded.cmvn, norm_vars=loaded.norm_vars, batch_size=16,
                                 device=loaded.device, input_dim=loaded.input_dim, warps=warps)), fs

    dev_out, _ = emissions("dev")
    dev_text = read_table(out / "data" / "dev" / "text")
    found = search_grid(loaded.units, dev_out, {o.utt: dev_text[o.utt].split() for o in dev_out}, lm,
                        lm_weights=LM_WEIGHTS, word_bonuses=WORD_BONUSES, beam=LM_BEAM)
    write_tuning(exp, found, lm=lm, ref=out / "data" / "dev" / "text", data=out / "feats" / "dev", beam=LM_BEAM,
                 checkpoint="best", utterances=len(dev_out))
    best = found.best
    log.info(f"lm decode: tuned on dev: lm weight {best.lm_weight:g}, word bonus {best.word_bonus:g} "
             f"(dev WER {best.wer:.2f}%)")
    lex = search_grid(loaded.units, dev_out, {o.utt: dev_text[o.utt].split() for o in dev_out}, lm,
                      lm_weights=(0.0,), word_bonuses=LEXICON_BONUSES, beam=LM_BEAM).best
    test_out, fs = emissions("test")
    frame_seconds = output_frame_seconds((fs.conf or {}).get("frame_shift"), loaded.subsampling)
    words_ref = read_table(out / "data" / "test" / "text")
    phones_ref = {u: v.split() for u, v in read_table(ref_phones).items()}
    utt2spk = read_table(out / "data" / "test" / "utt2spk")
    held_out = set(held_out)
    new_ref = {u: v for u, v in phones_ref.items() if utt2spk.get(u) in held_out}

    def pers(hyps: dict[str, list[str]]) -> tuple[float, Optional[float]]:
        held = float(score(new_ref, {u: hyps[u] for u in new_ref}).wer) if new_ref else None
        return float(score(phones_ref, hyps).wer), held

    greedy = {u: v.split() for u, v in read_table(dec / "hyp.txt").items()}
    rows = [SearchScore("greedy CTC (phones)", str(dec / "hyp.txt"), None, *pers(greedy))]
    for name, file, weight, bonus in [("beam 20 + lexicon, no LM", "hyp_lex", 0.0, lex.word_bonus),
                                      (f"beam 20 + lexicon + {LM_ORDER}-gram LM", "hyp_lm", best.lm_weight,
                                       best.word_bonus)]:
        with BeamDecoder(loaded.units, beam=LM_BEAM, lm=lm, lm_weight=weight, word_bonus=bonus) as decoder:
            hyps = list(search_outputs(test_out, loaded.units, decoder, times=True))
        for h in hyps:
            h.frame_seconds = frame_seconds
        for fmt, suffix in (("text", ".txt"), ("ctm", ".ctm")):
            with atomic_write(dec / (file + suffix)) as f:
                write_hypotheses(hyps, f, fmt, flush=False)
        wer = float(score({h.utt: words_ref[h.utt].split() for h in hyps}, {h.utt: h.tokens for h in hyps}).wer)
        rows.append(SearchScore(name, str(dec / (file + ".txt")), wer, *pers({h.utt: h.units for h in hyps})))
    with atomic_write(dec / "words.txt") as f:
        f.write(rep_words(rows) + "\n")
    return rows


def rep_words(rows: Sequence[SearchScore]) -> str:
    from asrkit.score import report as rep

    return rep.render_plain(words_table(rows))


def words_table(rows: Sequence[SearchScore]):
    """A :class:`asrkit.score.report.Table` of the searches' WER and PER (and PER
    on the voice heard only in test, when there is one)."""
    from asrkit.score.report import Table

    held = any(r.per_held_out is not None for r in rows)
    return Table("Decoding the tiny test set to words (phone model + CMU lexicon)",
                 ["SEARCH", "%WER", "%PER"] + (["%PER HELD-OUT VOICE"] if held else []),
                 [[r.search, _pct(r.wer), f"{r.per:.2f}"] + ([_pct(r.per_held_out)] if held else [])
                  for r in rows],
                 [False, True, True] + ([True] if held else []))


# ---------------------------------------------------------------------- report
def demo_table(groups: Sequence[GroupScore], title: str, held_out: Sequence[str] = ()):
    """A :class:`asrkit.score.report.Table` of group PERs (held-out speakers marked ``*``)."""
    from asrkit.score.report import Table

    rows = []
    for g in groups:
        name = g.name + (" *" if g.name in held_out else "")
        if len(g.speakers) > 1 and len(g.speakers) <= 3:
            name += f" ({', '.join(g.speakers)})"
        elif len(g.speakers) > 3:
            name += f" ({len(g.speakers)} speakers)"
        c = g.counts
        rows.append([name, str(g.utts), str(c.ref), str(c.sub), str(c.dele), str(c.ins), _pct(g.per)])
    return Table(title + (" (* heard only in test)" if held_out else ""),
                 ["SET", "#UTT", "#PHONES", "SUB", "DEL", "INS", "%PER"], rows,
                 [False, True, True, True, True, True, True])


def _print_summary(r: DemoResult, out_stream) -> None:
    from asrkit.score import report as rep

    tables = [demo_table(r.groups, "Greedy CTC decoding of the tiny test set: phone error rate")]
    if r.searches:
        tables.append(words_table(r.searches))
    text = []
    if out_stream.isatty():
        from rich.console import Console

        console = Console(file=out_stream)
        for t in tables:
            console.print(rep.render_rich(t))
    else:
        text += [rep.render_plain(t) for t in tables]
    trained = (f"{r.epochs} of {r.epochs_planned} epochs (stopped by the time budget)" if r.out_of_time
               else f"{r.epochs} epochs")
    speed = f", {r.train_frames_per_s:.0f} frames/s" if r.train_frames_per_s else ""
    threads = f", {r.threads} thread{'s' if r.threads != 1 else ''}" if r.threads else ""
    text += [
        "",
        f"model:      {r.exp} (Conformer-CTC, phone units, impl {r.impl}, {trained}{speed}{threads})",
        ("decoding:   test-time VTLP, the mean over warps " + ",".join(f"{a:g}" for a in r.warps)
         + f" ({len(r.warps)} forward passes; --warps 1: one plain pass)" if r.warps
         else "decoding:   one plain forward pass (no test-time VTLP)"),
        f"hypotheses: {r.hyp}",
        f"references: {r.ref}  (test text.phones without sil)",
        f"report:     {r.report}  (per speaker), alignments: {r.per_utt}",
        f"rescore:    asrkit score {r.ref} {r.hyp} --per-spk",
        *([f"words:      {r.searches[-1].hyp} (LM beam; .ctm: word times), {r.searches[1].hyp} (no LM); "
           f"LM weights in {r.exp}/lm_tuning.yaml",
           f"            asrkit score {r.out}/data/test/text {r.searches[-1].hyp}"] if len(r.searches) > 2 else []),
        "time:       " + ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items()),
    ]
    out_stream.write("\n".join(text) + "\n")
    out_stream.flush()


# ---------------------------------------------------------------------- the pipeline
def run_demo(out: str | os.PathLike = "exp/demo", *, epochs: int = DEMO_EPOCHS, minutes: Optional[float] = None,
             device: str = "auto", jobs: int = 2, seed: int = 0, overrides: Sequence[str] = (),
             utts_per_split: Optional[int] = None, threads: Optional[int] = DEMO_THREADS,
             warps: Sequence[float] = DEMO_WARPS, stdout=None) -> DemoResult:
    """Run the demo into ``out`` and print the PER table and output paths.

    Args:
        epochs: training epochs (a fixed amount of work: the same numbers on a
            fast or a busy machine; a busy one only takes longer).
        minutes: an optional training time budget: training stops when it
            is spent and the best checkpoint so far decodes (a later run
            resumes). None (the default): no budget.
        device: ``auto``, ``cpu`` or ``cuda`` for training and decoding.
        jobs: feature extraction processes.
        overrides: more dotted config overrides for the trainer
            (``model.impl=native``, ``model.hidden=128``).
        utts_per_split: use only this many utterances of each split (spread
            over the speakers): quick checks and tests.
        threads: torch CPU threads while the demo runs (None: torch's
            choice, one per core). The default, 1, keeps its speed when other
            jobs share the cores.
        warps: test-time VTLP factors of every decode (:data:`DEMO_WARPS`; ``()`` or ``(1.0,)``:
            plain decoding).
        stdout: where the table goes (default ``sys.stdout``); progress goes to stderr.
    """
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    if minutes is not None and minutes <= 0:
        raise UsageError(f"--minutes must be > 0, got {minutes}")
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got '{device}'")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    from asrkit.decode.emissions import check_warps

    warps = check_warps(warps)
    out = Path(out)
    cfg = demo_train_config(epochs, device, seed, overrides)  # bad overrides fail before any work
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(out, cfg, minutes, device, jobs, utts_per_split, stdout, warps)
    finally:
        torch.set_num_threads(before)


def _train_speed(exp: Path) -> Optional[float]:
    """Training frames per second over the epochs in ``exp/metrics.jsonl``
    (dev evaluation excluded); None before the first epoch."""
    path = exp / "metrics.jsonl"
    if not path.exists():
        return None
    frames = seconds = 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        ev = json.loads(line) if line.strip() else {}
        if ev.get("event") == "dev" and "frames_per_s" in ev and "epoch_s" in ev:
            frames += ev["frames_per_s"] * ev["epoch_s"]
            seconds += ev["epoch_s"]
    return frames / seconds if seconds else None


def _run(out: Path, cfg: dict, minutes: Optional[float], device: str, jobs: int, utts_per_split: Optional[int],
         stdout, warps: tuple[float, ...]) -> DemoResult:
    exp = out / "exp" / EXP_NAME
    dec = exp / "decode_test"
    hyp, ref, report, per_utt = dec / "hyp.txt", dec / "ref.txt", dec / "per.txt", dec / "per_utt.txt"
    seconds: dict[str, float] = {}
    t = time.monotonic()
    _stage_corpus(out, utts_per_split)
    seconds["corpus"] = time.monotonic() - t
    t = time.monotonic()
    _stage_features(out, jobs)
    seconds["features"] = time.monotonic() - t
    t = time.monotonic()
    deadline = None if minutes is None else t + 60.0 * minutes
    done_epochs, out_of_time = _stage_train(out, exp, cfg, deadline)
    seconds["train"] = time.monotonic() - t
    t = time.monotonic()
    dec.mkdir(parents=True, exist_ok=True)
    _stage_decode(exp, out / "feats" / "test", hyp, device, warps)
    seconds["decode"] = time.monotonic() - t
    t = time.monotonic()
    groups, speakers = _stage_score(out, hyp, ref, report, per_utt)
    seconds["score"] = time.monotonic() - t
    t = time.monotonic()
    lm = _stage_lm(out)
    held_out = groups[2].speakers if len(groups) > 2 else []
    searches = _stage_lm_decode(out, exp, lm, dec, ref, device, held_out, warps)
    seconds["lm"] = time.monotonic() - t

    import torch

    result = DemoResult(out=out, exp=exp, hyp=hyp, ref=ref, report=report, per_utt=per_utt, groups=groups,
                        speakers=speakers, epochs=done_epochs, epochs_planned=int(cfg["train"]["epochs"]),
                        out_of_time=out_of_time, impl=str(cfg["model"]["impl"]), threads=torch.get_num_threads(),
                        train_frames_per_s=_train_speed(exp), seconds=seconds, searches=searches, warps=warps)
    with atomic_write(out / "demo.json") as f:
        json.dump(result.to_json(), f, indent=2)
        f.write("\n")
    _print_summary(result, stdout if stdout is not None else sys.stdout)
    return result
