"""Greedy vs beam + word LM, and flashlight vs pyctcdecode, on the same emissions and the same LM.

For each model (an exp dir with a dev and a test feature store and a word ARPA LM):

1. the model runs once over dev and test (timed: the forward pass's real-time factor);
2. greedy decoding of test (WER for char/bpe models, PER for phone models);
3. for each LM backend (flashlight for every unit kind, pyctcdecode for char/bpe): the LM weight
   and word bonus are tuned on dev (asrkit.pipeline.tune.search_grid, the grid of `asrkit tune`),
   then test is decoded with beam --beam (best of --repeat timed runs over the saved
   emissions: utterances/s and the search's real-time factor) and scored.

Phone models decode to words through the lexicon (CMU dict) with flashlight: greedy decoding
gives phones only, so their word baseline is the lexicon-constrained beam with LM weight 0
("lexicon" rows); their PER column scores the phones of the chosen words. References come from the feature stores (`text`, and
`text.phones` without sil for PER when the store has it, else the lexicon's spelling).

    # build the tiny corpus and train a phone and a char model in --work (~12 min on 2 cores):
    .venv/bin/python benchmarks/decode_bench.py --work /tmp/decode_bench
    # or reuse models: NAME=EXP,DEV_FEATS,TEST_FEATS,LM (repeatable)
    .venv/bin/python benchmarks/decode_bench.py \\
        --model tiny-phone=exp/phone,feats/dev,feats/test,lm3.arpa --model tiny-char=exp/char,feats/dev,feats/test,lm3.arpa

Search only, on saved emissions (``asrkit decode EXP FEATS --save-emissions DIR`` of dev and test; no
model runs): --emissions NAME=EXP,DEV_EMISSIONS,TEST_EMISSIONS,LM gives one row per search setting:
pyctcdecode with its own defaults (0.5/1.5) and tuned on dev, asrkit's default LM search before
(flashlight, pruning 15/16, weights 0.5/0) and now (``asrkit decode --lm`` with no weights), each also
tuned on dev, the tuned search with blank skipping (--blank-skips), and narrower flashlight pruning
(--prunings THRESHOLD/UNITS,...: beam_threshold / beam_size_token, each tuned on dev; the speed a
narrower search buys and the WER it costs). The rows are timed alternately
in one process, --repeat rounds, median utt/s; "x pcd" is the ratio to tuned pyctcdecode's median.
Tuning pyctcdecode on dev takes minutes; --tuned BACKEND=W/B reuses weights found before:

    .venv/bin/python benchmarks/decode_bench.py --no-ctc --emissions tiny-char=exp/char,em_dev,em_test,lm3.arpa \
        --repeat 5 --tuned pyctcdecode=0.75/2

Attention models (task las / transformer; a trained exp dir is needed, so this part runs only when one
is given with --attention, and is skipped otherwise): the encoder runs once over FEATS, then greedy
decoding and the beam search (--attention-beam, default 10; CTC weight 0.3 when the model has a CTC
head; and with the LM when one is given) are timed over the cached encoder outputs (utterances/s, best
of --repeat) and scored (WER against FEATS/text). --no-ctc skips the CTC part (and the tiny corpus):

    .venv/bin/python benchmarks/decode_bench.py --no-ctc --attention tf=exp/tf,feats/test[,lm3.arpa] --device cuda

Forward pass and whole command (--whole EXP,FEATS,LM: a CTC model, a store with `text` and, for a phone
model, `text.phones`; only these two parts run): (1) the model's forward pass in this process, float32 with
asrkit's layers as the code at --before ran it (no_grad, batches of 16), under inference_mode, with
--batch-frames, with torch's kernels and with --quantize int8, alternated, median CPU seconds of --repeat
rounds and the greedy error rate of each; (2) whole `asrkit decode` commands, each a fresh process, greedy
and beam 20 + LM, the code at git revision --before (`git archive` of the asrkit package into a temporary
folder) against this checkout (plain, --batch-frames, --quantize int8), alternated, --repeat times: the
median CPU seconds per phase (start = the interpreter and imports, model load, LM load, forward = features
and the model, search = the rest of the command, output), the total (user + sys, start to exit), utt/s,
RTF, wall seconds, and the error rate of the output; ``exit`` is the CPU seconds after the command returned (the
interpreter's exit; the child ends through ``asrkit.cli.main.finish`` where the code has it, as the
``asrkit`` program does). --whole-plain runs only the rows without --batch-frames / --quantize:

    .venv/bin/python benchmarks/decode_bench.py --before 61e15c9 --repeat 3 \\
        --whole exp/ctc_phone,feats/test,exp/lm3.arpa
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from asrkit.data import FeatureStore  # noqa: E402
from asrkit.decode import BeamDecoder, iter_outputs, load_exp  # noqa: E402
from asrkit.decode.greedy import greedy_hypothesis  # noqa: E402
from asrkit.pipeline.tune import default_grids, parse_grid, search_grid  # noqa: E402
from asrkit.score import score  # noqa: E402

ASRKIT = [sys.executable, "-m", "asrkit"]


@dataclass
class Model:
    name: str
    exp: Path
    dev: Path
    test: Path
    lm: Path


def sh(*args: str, cwd: Path) -> None:
    print("+", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([*ASRKIT, "-q", *args], cwd=cwd, check=True)


def build_tiny(work: Path) -> list[Model]:
    """Tiny corpus -> fbank -> phone and char Conformer-CTC models (recipes/tiny/conf) -> 3-gram LM."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "data" / "lm_text.txt").is_file():
        sh("corpus", "tiny", "data", cwd=work)
    for split in ("train", "dev", "test"):
        if not (work / "feats" / split / "index.tsv").is_file():
            sh("featurize", f"data/{split}", f"feats/{split}", "--jobs", "2", cwd=work)
    conf = REPO / "recipes" / "tiny" / "conf" / "ctc_phone.yaml"
    for kind in ("phone", "char"):
        if not (work / "exp" / kind / "checkpoints" / "best.pt").is_file():
            sh("train", "ctc", "--train", "feats/train", "--dev", "feats/dev", "--out", f"exp/{kind}", "--conf",
               str(conf), f"units.kind={kind}", "train.threads=1", "--resume", cwd=work)
    if not (work / "lm3.arpa").is_file():
        sh("lm", "build", "data/lm_text.txt", "--order", "3", "-o", "lm3.arpa", cwd=work)
    return [Model(f"tiny-{k}", work / "exp" / k, work / "feats" / "dev", work / "feats" / "test", work / "lm3.arpa")
            for k in ("phone", "char")]


def parse_model(spec: str) -> Model:
    name, _, rest = spec.partition("=")
    parts = rest.split(",")
    if not name or len(parts) != 4:
        raise SystemExit(f"--model {spec}: expected NAME=EXP,DEV_FEATS,TEST_FEATS,LM")
    return Model(name, *(Path(p) for p in parts))


def outputs(exp, store_path: Path) -> tuple[list, float, float]:
    """The model's log-probs over a store, the forward seconds and the audio seconds."""
    store = FeatureStore(store_path)
    t = time.perf_counter()
    outs = list(iter_outputs(exp.model, store, cmvn=exp.cmvn, norm_vars=exp.norm_vars, batch_size=16,
                             device=exp.device, input_dim=exp.input_dim))
    seconds = time.perf_counter() - t
    shift = float((store.conf or {}).get("frame_shift", 10.0)) / 1000.0
    return outs, seconds, sum(o.frames for o in outs) * shift


def phone_refs(store_path: Path, units, utts) -> dict[str, list[str]]:
    from asrkit.data.table import read_table

    if (store_path / "text.phones").is_file():  # the store's copy of the data dir's text.phones
        phones = read_table(store_path / "text.phones")
        return {u: [p for p in phones[u].split() if p != "sil"] for u in utts}
    text = FeatureStore(store_path).text
    return {u: units.symbols(units.tokenizer.encode(text[u].split())) for u in utts}


def rate(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> float:
    return float(score(refs, hyps).wer)


def timed(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return result, best


def bench(model: Model, beam: int, repeat: int, grid: bool) -> list[dict]:
    torch.set_num_threads(1)
    exp = load_exp(model.exp, device="cpu", task="ctc")
    units = exp.units
    dev_out, _, _ = outputs(exp, model.dev)
    test_out, fwd_s, audio_s = outputs(exp, model.test)
    test_text = FeatureStore(model.test).text
    dev_text = FeatureStore(model.dev).text
    utts = [o.utt for o in test_out]
    word_refs = {u: test_text[u].split() for u in utts}
    dev_refs = {o.utt: dev_text[o.utt].split() for o in dev_out}
    ph_refs = phone_refs(model.test, units, utts) if units.kind == "phone" else None
    rows = []

    def row(search, backend, weights, hyps, units_of, secs):
        r = {"model": model.name, "search": search, "backend": backend, "weights": weights,
             "wer": None if units.kind == "phone" and search == "greedy" else rate(word_refs, hyps),
             "per": rate(ph_refs, units_of) if ph_refs is not None else None,
             "utt_s": len(utts) / secs, "rtf": secs / audio_s}
        rows.append(r)
        print(fmt_row(r), file=sys.stderr, flush=True)

    greedy, secs = timed(lambda: [greedy_hypothesis(o, units, blank=units.blank_id) for o in test_out], repeat)
    row("greedy", "-", "-", {h.utt: h.tokens for h in greedy}, {h.utt: h.units for h in greedy}, secs)
    if units.kind == "phone":  # greedy gives no words: the lexicon alone (LM weight 0) is the word baseline
        with BeamDecoder(units, beam=beam, lm=model.lm, lm_weight=0.0, word_bonus=0.0) as dec:
            hyps, secs = timed(lambda: [dec.decode(o) for o in test_out], repeat)
        row(f"beam {beam} lexicon", "flashlight", "0/0", {h.utt: h.tokens for h in hyps},
            {h.utt: h.units for h in hyps}, secs)
    backends = ["flashlight"] + ([] if units.kind == "phone" else ["pyctcdecode"])
    for backend in backends:
        if grid:
            ws, bs = default_grids(backend)
            found = search_grid(units, dev_out, dev_refs, model.lm, lm_weights=parse_grid(ws, "--lm-weights"),
                                word_bonuses=parse_grid(bs, "--word-bonuses"), beam=beam, backend=backend)
            a, b = found.best.lm_weight, found.best.word_bonus
        else:
            a, b = 0.5, None
        with BeamDecoder(units, beam=beam, lm=model.lm, lm_weight=a, word_bonus=b, backend=backend) as dec:
            hyps, secs = timed(lambda: [dec.decode(o) for o in test_out], repeat)
            weights = f"{dec.lm_weight:g}/{dec.word_bonus:g}"
        row(f"beam {beam} + LM", backend, weights, {h.utt: h.tokens for h in hyps}, {h.utt: h.units for h in hyps},
            secs)
    print(f"{model.name}: model forward RTF {fwd_s / audio_s:.4f} ({len(utts)} utts, {audio_s / 60:.1f} min audio)",
          file=sys.stderr)
    return rows


HEADER = f"{'model':<14} {'search':<14} {'backend':<12} {'lm_w/bonus':<11} {'WER%':>7} {'PER%':>7} {'utt/s':>8} " \
         f"{'RTF':>8}"


def fmt_row(r: dict) -> str:
    def pct(v):
        return f"{v:7.2f}" if v is not None else f"{'-':>7}"
    return (f"{r['model']:<14} {r['search']:<14} {r['backend']:<12} {r['weights']:<11} {pct(r['wer'])} "
            f"{pct(r['per'])} {r['utt_s']:8.1f} {r['rtf']:8.5f}")


@dataclass
class AttentionModel:
    name: str
    exp: Path
    feats: Path
    lm: Path | None


def parse_attention(spec: str) -> AttentionModel:
    name, _, rest = spec.partition("=")
    parts = rest.split(",")
    if not name or len(parts) not in (2, 3):
        raise SystemExit(f"--attention {spec}: expected NAME=EXP,FEATS[,LM]")
    return AttentionModel(name, Path(parts[0]), Path(parts[1]), Path(parts[2]) if len(parts) == 3 else None)


def bench_attention(model: AttentionModel, beam: int, repeat: int, device: str) -> list[dict]:
    """Greedy vs beam (vs beam + LM) utt/s and WER of an attention model over cached encoder outputs."""
    from asrkit.decode.attention import DEFAULT_CTC_WEIGHT, ATTENTION_TASKS, AttentionSearch, encode_store
    from asrkit.decode.word_lm import WordLM

    torch.set_num_threads(1)
    exp = load_exp(model.exp, device=device, task=ATTENTION_TASKS)
    store = FeatureStore(model.feats)
    t = time.perf_counter()
    batches = encode_store(exp, store, batch_size=16)
    enc_s = time.perf_counter() - t
    shift = float((store.conf or {}).get("frame_shift", 10.0)) / 1000.0
    audio_s = sum(n for b in batches for n in b.frames) * shift
    text = store.text or {}
    refs = {u: text.get(u, "").split() for b in batches for u in b.names}
    has_ctc = bool(getattr(exp.model, "has_ctc", False))
    searches = [("greedy", AttentionSearch())]
    searches.append((f"beam {beam}", AttentionSearch(beam=beam, ctc_weight=DEFAULT_CTC_WEIGHT if has_ctc else 0.0)))
    lm = WordLM(model.lm, exp.units) if model.lm is not None and exp.units.kind != "phone" else None
    if lm is not None:
        searches.append((f"beam {beam} + LM", AttentionSearch(beam=beam, ctc_weight=DEFAULT_CTC_WEIGHT if has_ctc
                                                              else 0.0, lm=lm, lm_weight=0.5)))
    rows = []
    for label, search in searches:
        def run():
            return {u: exp.units.tokens(found[0].ids) for b in batches
                    for u, found in zip(b.names, search.run(exp.model, b.enc))}
        hyps, secs = timed(run, repeat)
        weights = "-" if search.beam is None else f"c{search.ctc_weight:g}/l{search.lm_weight:g}"  # CTC / LM weight
        r = {"model": model.name, "search": label, "backend": "attention", "weights": weights,
             "wer": rate(refs, hyps) if any(refs.values()) else None, "per": None, "utt_s": len(refs) / secs,
             "rtf": secs / audio_s}
        rows.append(r)
        print(fmt_row(r), file=sys.stderr, flush=True)
    print(f"{model.name}: encoder RTF {enc_s / audio_s:.4f} on {device} ({len(refs)} utts)", file=sys.stderr)
    greedy, beamed = rows[0], rows[1]
    print(f"{model.name}: beam {beam} runs at {beamed['utt_s'] / greedy['utt_s']:.2f}x greedy's utt/s", file=sys.stderr)
    return rows


# -- forward pass and whole command (asrkit decode from process start to last line) -----------------------------

def bench_forward(exp_dir: Path, feats: Path, repeat: int, batch_frames: int) -> list[dict]:
    """The model's forward pass over FEATS in one process, the variants run alternately and the median of
    ``repeat`` runs each: float32 with asrkit's layers (no_grad, batches of 16: the code at main), the same under
    inference_mode, by --batch-frames, torch's kernels (impl native), and --quantize int8; the greedy error rate of
    each (PER for phone models, against the store's text.phones without sil)."""
    import copy
    import statistics

    from asrkit.decode.greedy import greedy_hypothesis as greedy
    from asrkit.decode.quantize import quantize_model
    from asrkit.nn import set_impl

    torch.set_num_threads(1)
    base = load_exp(exp_dir, device="cpu", task="ctc")
    store = FeatureStore(feats)
    native = copy.deepcopy(base.model)
    set_impl(native, "native")
    int8 = copy.deepcopy(base.model)
    quantize_model(int8, "int8")
    variants = [("float32 scratch, no_grad, 16 utts (main)", base.model, False, None),
                ("float32 scratch, inference_mode", base.model, True, None),
                (f"float32 scratch, --batch-frames {batch_frames}", base.model, True, batch_frames),
                ("float32 native (--impl native)", native, True, None),
                ("int8 (--quantize int8)", int8, True, None)]
    units = base.units
    refs = (phone_refs(feats, units, store.keys()) if units.kind == "phone"
            else {u: store.text[u].split() for u in store.keys()})
    secs: dict[str, list[float]] = {v[0]: [] for v in variants}
    hyps: dict[str, dict] = {}
    for _ in range(repeat):
        for name, model, inference, frames in variants:  # alternately: the machine's load hits each alike
            ctx = torch.inference_mode() if inference else torch.no_grad()
            t = time.process_time()
            with ctx:
                outs = list(iter_outputs(model, store, cmvn=base.cmvn, norm_vars=base.norm_vars, batch_size=16,
                                         device="cpu", input_dim=base.input_dim, batch_frames=frames))
            secs[name].append(time.process_time() - t)
            hyps[name] = {o.utt: (greedy(o, units, blank=units.blank_id).units if units.kind == "phone" else
                                  greedy(o, units, blank=units.blank_id).tokens) for o in outs}
    rows = []
    ref_name = variants[0][0]
    for name, *_ in variants:
        hyp = {u: [p for p in h if p != "sil"] for u, h in hyps[name].items()}
        rows.append({"variant": name, "seconds": statistics.median(secs[name]),
                     "speedup": statistics.median(a / b for a, b in zip(secs[ref_name], secs[name])),
                     "err": rate(refs, hyp), "same": hyps[name] == hyps[ref_name]})
    print(f"forward pass over {feats} ({len(store)} utts), CPU seconds (one thread), median of {repeat}, alternated; "
          f"speed-up = median of "
          f"the per-round ratios to the first row; err = greedy {'PER' if units.kind == 'phone' else 'WER'}%")
    print(f"{'variant':<42} {'seconds':>8} {'speed-up':>9} {'err%':>7} {'same hyps':>10}")
    for r in rows:
        print(f"{r['variant']:<42} {r['seconds']:8.2f} {r['speedup']:8.2f}x {r['err']:7.2f} {str(r['same']):>10}")
    return rows


#: Run in the child process of a whole-command row: the decode command of the code in SRC, with timers put
#: around the same functions in both the code at main and now (so both are measured alike): load_exp (model
#: load), BeamDecoder() (LM load), FeatureStore.get + pad_features (features), the model's forward (hooks),
#: the hypothesis line writers (output). The rest of the command is the search. The timers read the process's
#: CPU clock (one thread: OMP_NUM_THREADS=1), which a shared machine's load disturbs far less than wall time.
_CHILD = r"""
import json, os, sys, time
src, out_json, args = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, src)
import torch
import asrkit.decode, asrkit.decode.beam, asrkit.decode.emissions, asrkit.decode.output
from asrkit.data.feature_store import FeatureStore
from asrkit.cli.main import main
ph = {}
def add(k, v):
    ph[k] = ph.get(k, 0.0) + v
def timed(obj, name, phase):
    f = getattr(obj, name)
    def w(*a, **k):
        t = time.process_time()
        try:
            return f(*a, **k)
        finally:
            add(phase, time.process_time() - t)
    setattr(obj, name, w)
load_exp = asrkit.decode.load_exp
def timed_load(*a, **k):
    t = time.process_time()
    exp = load_exp(*a, **k)
    add("model load", time.process_time() - t)
    marks = []
    exp.model.register_forward_pre_hook(lambda *_: marks.append(time.process_time()))
    exp.model.register_forward_hook(lambda *_: add("forward", time.process_time() - marks.pop()))
    return exp
asrkit.decode.load_exp = timed_load
timed(asrkit.decode.beam.BeamDecoder, "__init__", "LM load")
timed(FeatureStore, "get", "features")
timed(asrkit.decode.emissions, "pad_features", "features")
for fmt in list(asrkit.decode.output.WRITERS):
    f = asrkit.decode.output.WRITERS[fmt]
    def line(h, f=f):
        t = time.process_time()
        try:
            return f(h)
        finally:
            add("output", time.process_time() - t)
    asrkit.decode.output.WRITERS[fmt] = line
c0 = time.process_time()
code = main(["-q", *args])
c1 = time.process_time()
sys.stdout.flush()
with open(out_json, "w") as f:
    json.dump({"c_cmd": c0, "c_end": c1, "code": code, "phases": ph}, f)
# end the process as the asrkit program does (cli.main.finish: os._exit after a decode, where the code has it)
finish = getattr(sys.modules["asrkit.cli.main"], "finish", None)
if finish is not None:
    finish(code, ["-q", *args])
"""


def _child_env() -> dict:
    import os

    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.pop("PYTHONPATH", None)
    return env


def run_whole(src: Path, args: list[str], hyp: Path) -> dict:
    """One decode command in a fresh process (the code in ``src``): CPU seconds per phase (``start``: the
    process's CPU time before the command: the interpreter and the imports), the child's CPU seconds (user +
    sys) from spawn to exit (``total``) and its wall seconds (``wall``)."""
    import json
    import resource
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        meta_path = Path(f.name)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_spawn = time.time()
    with open(hyp, "w") as out:
        subprocess.run([sys.executable, "-c", _CHILD, str(src), str(meta_path), *args], stdout=out,
                       stderr=subprocess.DEVNULL, check=True, env=_child_env(), cwd=src)
    t_exit = time.time()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    meta = json.loads(meta_path.read_text())
    meta_path.unlink()
    if meta["code"] != 0:
        raise SystemExit(f"{' '.join(args)}: exit status {meta['code']}")
    ph = meta["phases"]
    command = meta["c_end"] - meta["c_cmd"]
    row = {"start": meta["c_cmd"], "model load": ph.get("model load", 0.0),
           "LM load": ph.get("LM load", 0.0), "forward": ph.get("forward", 0.0) + ph.get("features", 0.0),
           "output": ph.get("output", 0.0),
           "total": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), "wall": t_exit - t_spawn}
    row["exit"] = max(0.0, row["total"] - meta["c_end"])  # after the command: the interpreter's exit
    row["search"] = max(0.0, command - row["model load"] - row["LM load"] - row["forward"] - row["output"])
    return row


def bench_whole(exp_dir: Path, feats: Path, lm: Path, text: Path, phones: Optional[Path], before: Path,
                repeat: int, batch_frames: int, plain: bool = False) -> list[dict]:
    """Whole ``asrkit decode`` commands, before (the code at ``before``) and after (this checkout), greedy and
    beam 20 + LM, run alternately ``repeat`` times: median seconds per phase, utt/s and RTF of the total, the
    error rate of the output."""
    import statistics
    import tempfile

    from asrkit.data.table import read_table

    store = FeatureStore(feats)
    shift = float((store.conf or {}).get("frame_shift", 10.0)) / 1000.0
    audio = sum(store.num_frames(u) for u in store.keys()) * shift
    exp_dir, feats, lm = exp_dir.resolve(), feats.resolve(), lm.resolve()
    common = ["decode", str(exp_dir), str(feats), "--device", "cpu"]
    lm_args = ["--beam", "20", "--lm", str(lm)]
    # "after" with no option: batches by frames (the default since 8000-frame batches); --batch-size 16
    # the batches of 16 utterances that were the default before
    cases = [("greedy", "before", before, []), ("greedy", "after", REPO, ["--batch-size", "16"]),
             ("greedy", "after", REPO, ["--batch-frames", str(batch_frames)]),
             ("greedy", "after", REPO, ["--quantize", "int8"]),
             ("beam 20 + LM", "before", before, lm_args),
             ("beam 20 + LM", "after", REPO, [*lm_args, "--batch-size", "16"]),
             ("beam 20 + LM", "after", REPO, [*lm_args, "--batch-frames", str(batch_frames)]),
             ("beam 20 + LM", "after", REPO, [*lm_args, "--quantize", "int8"])]
    if plain:  # --whole-plain: the commands without --batch-frames / --quantize
        cases = [c for c in cases if c[3] in ([], lm_args)]
    words = {u: t.split() for u, t in read_table(text).items()}
    phone_ref = ({u: [p for p in t.split() if p != "sil"] for u, t in read_table(phones).items()}
                 if phones is not None else None)
    runs: dict[int, list[dict]] = {i: [] for i in range(len(cases))}
    errs: dict[int, tuple[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat):
            for i, (search, version, src, extra) in enumerate(cases):  # alternately
                hyp = Path(tmp) / f"hyp{i}.txt"
                runs[i].append(run_whole(src, [*common, *extra], hyp))
                got = {ln.split()[0]: ln.split()[1:] for ln in hyp.read_text().splitlines() if ln.strip()}
                if search == "greedy" and phone_ref is not None:
                    errs[i] = ("PER", rate({u: phone_ref[u] for u in got}, got))
                else:
                    errs[i] = ("WER", rate({u: words[u] for u in got}, got))
    rows = []
    for i, (search, version, src, extra) in enumerate(cases):
        med = {k: statistics.median(r[k] for r in runs[i]) for k in runs[i][0]}
        opts = " ".join(a for a in extra if a not in lm_args) or "-"
        rows.append({"mode": search, "version": version, "options": opts, **med, "utt_s": len(store) / med["total"],
                     "rtf": med["total"] / audio, "rtf_wall": med["wall"] / audio, "err": errs[i]})
    print(f"whole command: asrkit decode {exp_dir.name} {feats.name} ({len(store)} utts, {audio:.0f} s audio), "
          f"median of {repeat} runs, cases alternated; CPU seconds of the process (one thread) per phase, total = "
          f"user + sys from start to exit; utt/s and RTF of that total; wall = wall-clock seconds and RTF (a shared "
          f"machine: compare rows, not absolute values)")
    print(WHOLE_HEADER)
    for r in rows:
        print(fmt_whole(r))
    return rows


WHOLE_HEADER = (f"{'search':<13} {'code':<7} {'options':<20} {'start':>6} {'model':>6} {'LM':>6} {'fwd':>6} "
                f"{'search':>6} {'out':>5} {'exit':>5} {'total':>6} {'utt/s':>6} {'RTF':>7} {'wall':>6} {'RTF wall':>8} "
                f"{'err%':>10}")


def fmt_whole(r: dict) -> str:
    kind, err = r["err"]
    return (f"{r['mode']:<13} {r['version']:<7} {r['options']:<20} {r['start']:6.2f} {r['model load']:6.2f} "
            f"{r['LM load']:6.2f} {r['forward']:6.2f} {r['search']:6.2f} {r['output']:5.2f} {r['exit']:5.2f} {r['total']:6.2f} "
            f"{r['utt_s']:6.2f} {r['rtf']:7.4f} {r['wall']:6.2f} {r['rtf_wall']:8.4f} {kind} {err:6.2f}")


def before_tree(rev: str, where: Path) -> Path:
    """The code of git revision ``rev`` (the asrkit package) unpacked into ``where``: the 'before' of the
    whole-command rows."""
    where.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "asrkit"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


@dataclass
class SearchSetting:
    label: str
    backend: str
    weights: tuple  # (lm_weight, word_bonus); None: the decoder's default; "tuned": tuned on dev
    blank_skip: float | None = None  # None: the default
    pruning: dict | None = None  # flashlight beam_threshold / beam_size_token; None: the defaults


#: asrkit's default LM search before the search-speed work (commit 61e15c9): flashlight, pruning 15 / 16
#: units, weights 0.5 / 0, no blank skipping
BEFORE = {"pruning": {"beam_threshold": 15.0, "beam_size_token": 16}, "weights": (0.5, 0.0), "blank_skip": 1.0}


def bench_search(spec: str, beam: int, repeat: int, tuned: dict, blank_skips: list[float],
                 prunings: list[tuple[float, int]] = ()) -> list[dict]:
    """Search-only rows over saved emissions (see the module docstring)."""
    from statistics import median

    from asrkit.decode.beam import DEFAULT_BLANK_SKIP, default_weights
    from asrkit.decode.emissions import open_saved_emissions
    from asrkit.pipeline.tune import exp_units, references

    torch.set_num_threads(1)
    name, _, rest = spec.partition("=")
    parts = rest.split(",")
    if not name or len(parts) != 4:
        raise SystemExit(f"--emissions {spec}: expected NAME=EXP,DEV_EMISSIONS,TEST_EMISSIONS,LM")
    exp, dev_em, test_em, lm = (Path(p) for p in parts)
    units = exp_units(exp)
    dev_saved, test_saved = open_saved_emissions(exp, dev_em, units), open_saved_emissions(exp, test_em, units)
    dev, test = list(dev_saved.outputs()), list(test_saved.outputs())
    dev_refs = {u: t.split() for u, t in (dev_saved.text or {}).items()}
    test_refs = {u: t.split() for u, t in (test_saved.text or {}).items()}
    dev_refs, test_refs = ({u: r[u] for u in (o.utt for o in outs)} for r, outs in ((dev_refs, dev), (test_refs, test)))
    shift = (test_saved.frame_shift or 10.0) / 1000.0
    audio_s = sum(o.frames for o in test) * shift

    def tune_on_dev(backend, blank_skip=None, pruning=None, key=None):
        key = key or (backend if pruning is None else f"{backend}-before")
        if key in tuned:
            return tuned[key]
        ws, bs = default_grids(backend)
        t = time.perf_counter()
        found = search_grid(units, dev, dev_refs, lm, lm_weights=parse_grid(ws, "--lm-weights"),
                            word_bonuses=parse_grid(bs, "--word-bonuses"), beam=beam, backend=backend,
                            blank_skip=blank_skip, pruning=pruning)
        b = found.best
        print(f"{name}: {key} tuned on dev in {time.perf_counter() - t:.0f} s: {b.lm_weight:g}/{b.word_bonus:g} "
              f"(dev WER {b.wer:.2f})", file=sys.stderr, flush=True)
        tuned[key] = (b.lm_weight, b.word_bonus)
        return tuned[key]

    pcd = [] if units.kind == "phone" else [  # pyctcdecode cannot decode phones to words
        SearchSetting("pyctcdecode defaults", "pyctcdecode", (0.5, 1.5), 1.0),
        SearchSetting("pyctcdecode tuned", "pyctcdecode", tune_on_dev("pyctcdecode", 1.0), 1.0),
    ]
    settings = pcd + [
        SearchSetting("before: default", "flashlight", BEFORE["weights"], 1.0, BEFORE["pruning"]),
        SearchSetting("before: tuned", "flashlight", tune_on_dev("flashlight", 1.0, BEFORE["pruning"]), 1.0,
                      BEFORE["pruning"]),
        SearchSetting("now: default", "flashlight", (None, None)),
        SearchSetting("now: tuned", "flashlight", tune_on_dev("flashlight")),
    ]
    now_tuned = settings[-1].weights
    for p in blank_skips:
        if p != DEFAULT_BLANK_SKIP:
            settings.append(SearchSetting(f"now: tuned, skip {p:g}", "flashlight", now_tuned, p))
    for thr, tok in prunings:
        pr = {"beam_threshold": float(thr), "beam_size_token": int(tok)}
        settings.append(SearchSetting(f"tuned, pruning {thr:g}/{tok}", "flashlight",
                                      tune_on_dev("flashlight", 1.0, pr, key=f"flashlight-{thr:g}/{tok}"), 1.0, pr))
    decoders = []
    for st in settings:
        w, b = st.weights
        decoders.append(BeamDecoder(units, beam=beam, lm=lm, backend=st.backend, lm_weight=w, word_bonus=b,
                                    blank_skip=st.blank_skip, **(st.pruning or {})))
    times: list[list[float]] = [[] for _ in settings]
    hyps: list[dict] = [{} for _ in settings]
    for _ in range(repeat):  # alternately, so the machine's load falls on every row alike
        for i, dec in enumerate(decoders):
            t = time.perf_counter()
            hyps[i] = {o.utt: dec.decode(o).tokens for o in test}
            times[i].append(time.perf_counter() - t)
    base = median(times[1]) if pcd else None  # tuned pyctcdecode's; phone models: none
    rows = []
    for st, dec, secs, hy in zip(settings, decoders, times, hyps):
        m = median(secs)
        r = {"model": name, "search": st.label, "backend": st.backend,
             "weights": f"{dec.lm_weight:g}/{dec.word_bonus:g}", "wer": rate(test_refs, hy), "per": None,
             "utt_s": len(test) / m, "rtf": m / audio_s, "x_pcd": None if base is None else base / m,
             "skip": dec.blank_skip}
        rows.append(r)
        dec.close()
    frames = sum(o.out_frames for o in test)
    from asrkit.decode.blank_skip import skip_blanks
    for p in sorted({r["skip"] for r in rows}):
        kept = sum(skip_blanks(o.log_probs, int(units.blank_id), p)[0].shape[0] for o in test)
        print(f"{name}: blank skip {p:g} keeps {kept}/{frames} frames ({100 * kept / frames:.1f}%)", file=sys.stderr)
    print(f"{name}: {len(test)} test utterances, {audio_s / 60:.1f} min, median of {repeat} alternating rounds, "
          f"default weights now {default_weights('flashlight')}", file=sys.stderr)
    return rows


SEARCH_HEADER = f"{'model':<11} {'search':<24} {'backend':<12} {'lm_w/bonus':<10} {'skip':>6} {'WER%':>7} " \
                f"{'utt/s':>8} {'x pcd':>6}"


def fmt_search_row(r: dict) -> str:
    return (f"{r['model']:<11} {r['search']:<24} {r['backend']:<12} {r['weights']:<10} {r['skip']:6g} "
            f"{r['wer']:7.2f} {r['utt_s']:8.1f} " + (f"{r['x_pcd']:6.2f}" if r["x_pcd"] is not None else f"{'-':>6}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=EXP,DEV,TEST,LM")
    ap.add_argument("--work", type=Path, default=Path("/tmp/asrkit_decode_bench"),
                    help="where the tiny corpus and its models are built when no --model is given")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per search (best of)")
    ap.add_argument("--no-grid", action="store_true", help="skip tuning on dev (lm weight 0.5, default bonus)")
    ap.add_argument("--attention", action="append", default=[], metavar="NAME=EXP,FEATS[,LM]",
                    help="an attention model (task las/transformer) to time greedy vs beam on (repeatable)")
    ap.add_argument("--attention-beam", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="where attention models run (cpu, cuda)")
    ap.add_argument("--no-ctc", action="store_true", help="skip the CTC models (and building the tiny corpus)")
    ap.add_argument("--whole", metavar="EXP,FEATS,LM", default=None,
                    help="only the forward pass and the whole-command rows of this CTC model (FEATS with text, and "
                         "text.phones for a phone model's PER); see the module docstring")
    ap.add_argument("--before", default="main", metavar="REV", help="git revision of the 'before' rows (--whole)")
    ap.add_argument("--whole-plain", action="store_true",
                    help="with --whole: only the whole commands without --batch-frames/--quantize, no forward table")
    ap.add_argument("--batch-frames", type=int, default=8000, help="--batch-frames of the rows that use it")
    ap.add_argument("--emissions", action="append", default=[], metavar="NAME=EXP,DEV_EM,TEST_EM,LM",
                    help="search-only rows on saved emissions (repeatable; see above)")
    ap.add_argument("--tuned", action="append", default=[], metavar="BACKEND=W/B",
                    help="with --emissions: weights tuned on dev before (pyctcdecode, flashlight, flashlight-before)")
    ap.add_argument("--blank-skips", default="0.999,0.99", help="with --emissions: blank-skip rows (comma list)")
    ap.add_argument("--prunings", default="", metavar="T/N,...",
                    help="with --emissions: rows of flashlight pruning beam_threshold T / beam_size_token N "
                         "(comma list; each tuned on dev, or --tuned flashlight-T/N=W/B)")
    args = ap.parse_args()
    if args.whole:
        import tempfile

        exp_dir, feats, lm = (Path(p) for p in args.whole.split(","))
        if not args.whole_plain:
            bench_forward(exp_dir, feats, args.repeat, args.batch_frames)
        phones = feats / "text.phones" if (feats / "text.phones").is_file() else None
        with tempfile.TemporaryDirectory() as tmp:
            before = before_tree(args.before, Path(tmp))
            bench_whole(exp_dir, feats, lm, feats / "text", phones, before, args.repeat, args.batch_frames,
                        plain=args.whole_plain)
        return
    if args.emissions:
        tuned = {k: tuple(float(x) for x in v.split("/")) for k, _, v in (t.partition("=") for t in args.tuned)}
        skips = [float(x) for x in args.blank_skips.split(",") if x]
        prunings = [(float(t), int(n)) for t, _, n in (x.partition("/") for x in args.prunings.split(",") if x)]
        search_rows = [r for spec in args.emissions
                       for r in bench_search(spec, args.beam, args.repeat, tuned, skips, prunings)]
        print(SEARCH_HEADER)
        for r in search_rows:
            print(fmt_search_row(r))
        if args.no_ctc and not args.attention:
            return
    rows = []
    if not args.no_ctc:
        models = [parse_model(m) for m in args.model] or build_tiny(args.work)
        for m in models:
            rows += bench(m, args.beam, args.repeat, not args.no_grid)
    if args.attention:
        for spec in args.attention:
            rows += bench_attention(parse_attention(spec), args.attention_beam, args.repeat, args.device)
    else:
        print("attention models: skipped (give a trained one with --attention NAME=EXP,FEATS[,LM])", file=sys.stderr)
    print(HEADER)
    for r in rows:
        print(fmt_row(r))
    for name in dict.fromkeys(r["model"] for r in rows):
        by = {r["backend"]: r for r in rows if r["model"] == name and r["search"].endswith("+ LM")}
        if "flashlight" in by and "pyctcdecode" in by:
            f, p = by["flashlight"], by["pyctcdecode"]
            print(f"{name}: flashlight {f['utt_s'] / p['utt_s']:.2f}x pyctcdecode's utt/s, WER {f['wer']:.2f} vs "
                  f"{p['wer']:.2f}")


if __name__ == "__main__":
    main()
