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
tuned on dev, and the tuned search with blank skipping (--blank-skips). The rows are timed alternately
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
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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


def bench_search(spec: str, beam: int, repeat: int, tuned: dict, blank_skips: list[float]) -> list[dict]:
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

    def tune_on_dev(backend, blank_skip=None, pruning=None):
        key = backend if pruning is None else f"{backend}-before"
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
    ap.add_argument("--emissions", action="append", default=[], metavar="NAME=EXP,DEV_EM,TEST_EM,LM",
                    help="search-only rows on saved emissions (repeatable; see above)")
    ap.add_argument("--tuned", action="append", default=[], metavar="BACKEND=W/B",
                    help="with --emissions: weights tuned on dev before (pyctcdecode, flashlight, flashlight-before)")
    ap.add_argument("--blank-skips", default="0.999,0.99", help="with --emissions: blank-skip rows (comma list)")
    args = ap.parse_args()
    if args.emissions:
        tuned = {k: tuple(float(x) for x in v.split("/")) for k, _, v in (t.partition("=") for t in args.tuned)}
        skips = [float(x) for x in args.blank_skips.split(",") if x]
        search_rows = [r for spec in args.emissions for r in bench_search(spec, args.beam, args.repeat, tuned, skips)]
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
