"""``asrkit featurize``: data dir -> feature store, in resumable shards.

The utterances (sorted) are cut into ``num_shards`` contiguous shards, fixed
in ``OUT/plan.json`` on the first run. A worker does whole shards: it reads
each utterance's audio, computes features, appends them to the shard's one
open file and accumulates CMVN stats; the shard becomes final (renamed, then
its done-marker) only when all of it is written. A re-run skips finished
shards and redoes any partial one. ``--shard I/N`` runs one shard (cluster
array jobs) and ``--merge`` joins them; without ``--shard`` the merge follows.

OUT follows :func:`asrkit.io.prepare_output_dir` (a non-empty folder that
featurize did not make needs ``--overwrite``) and is locked for the run
(``OUT/.lock``; ``--shard`` runs share it). A long recording is read and
computed in blocks (:func:`asrkit.features.compute.compute_blocks`), so
memory does not grow with its length.

``--jobs N`` runs N worker processes, forked (no torch import to repeat),
each doing whole shards (the next unstarted one when it is free) with torch
on one thread. The default number of shards does not depend on ``--jobs``
up to 4, so the store is the same bytes whatever the jobs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from asrkit import log
from asrkit.data.datadir import DataDir
from asrkit.data.feature_store import (CONF, INDEX, PLAN, SHARDS, FeatureStore, ShardWriter, clear_shard,
                                       merge_shards, shard_done)
from asrkit.data.table import write_table
from asrkit.errors import AudioError, DataError, OutputError, UsageError
from asrkit.features.config import FeatureConfig
from asrkit.io import atomic_write, check_output_dir, os_error_line, output_lock, prepare_output_dir

COMMAND = "featurize"  # the name in the .asrkit marker of a store

Item = tuple  # (utt, spk, source, start, end)
_REPORT_EVERY = 0.2  # seconds between progress messages from a worker
MIN_SHARDS = 16  # the default shard count for up to 4 jobs (see default_num_shards)


@dataclass
class Result:
    """What a featurize run did."""

    out: Path
    utterances: int
    skipped: int
    shards_done: int
    shards_skipped: int
    seconds_audio: float
    wall: float
    merged: bool


def _items(d: DataDir) -> list[Item]:
    out = []
    for u in d.utt_ids:
        src, start, end = d.source(u)
        out.append((u, d.utt2spk[u], src, start, end))
    return out


def _fingerprint(items: list[Item]) -> str:
    h = hashlib.sha1()
    for it in items:
        h.update(("\t".join("" if v is None else str(v) for v in it) + "\n").encode())
    return h.hexdigest()


def default_num_shards(n: int, jobs: int) -> int:
    """Enough shards to keep ``jobs`` workers busy (4 each) and to lose at most
    ~2000 utterances per worker to an interrupt, few enough to keep the
    number of shard files modest (a million utterances: 500 shards). At
    least 16, so that up to 4 jobs cut the data the same way: the shard
    files and the CMVN sums (added shard by shard) are then the same bytes
    with ``--jobs 1`` as with ``--jobs 4``."""
    if n == 0:
        return 1
    return max(1, min(n, max(MIN_SHARDS, 4 * jobs, math.ceil(n / 2000))))


def shard_bounds(n: int, num_shards: int, i: int) -> tuple[int, int]:
    return i * n // num_shards, (i + 1) * n // num_shards


# ----------------------------------------------------------------- the worker
class _Stopped(Exception):
    """Ends a shard early: another shard failed or the run was interrupted."""


def _run_shard(out: str, shard: int, items: list[Item], conf_dict: dict, skip_bad: bool,
               report: Callable[[int, float], None] | None = None, opts: dict | None = None) -> dict:
    """Featurize one shard's utterances into ``out``; returns its marker.
    ``opts``: ``pipe_timeout`` (seconds), ``block_frames``, ``stop`` (a
    :class:`multiprocessing.Event`: when set, the shard is abandoned before its
    next utterance)."""
    try:
        return _featurize_shard(out, shard, items, conf_dict, skip_bad, report, opts or {})
    except OSError as e:  # disk full, permissions: a user problem, not a bug
        raise OutputError(os_error_line(out, e)) from None


def _featurize_shard(out: str, shard: int, items: list[Item], conf_dict: dict, skip_bad: bool,
                     report: Callable[[int, float], None] | None, opts: dict) -> dict:
    from asrkit.audio import open_samples
    from asrkit.features.compute import DEFAULT_BLOCK_FRAMES, compute_blocks

    conf = FeatureConfig.from_dict(conf_dict)
    rate = conf.sample_rate
    pipe_timeout = opts.get("pipe_timeout")
    block_frames = opts.get("block_frames") or DEFAULT_BLOCK_FRAMES
    stop = opts.get("stop")

    clear_shard(out, shard)
    cache: dict = {}  # the last decoded recording (segments of one piped/compressed file)
    n_pending, s_pending, last = 0, 0.0, time.monotonic()
    with ShardWriter(out, shard) as w:
        for utt, spk, src, start, end in items:
            if stop is not None and stop.is_set():
                raise _Stopped()
            secs = 0.0
            began = False
            try:
                with open_samples(src, rate, start=start, end=end, pipe_timeout=pipe_timeout,
                                  cache=cache if start is not None else None) as x:
                    w.begin(utt, spk)
                    began = True
                    frames = 0
                    for block in compute_blocks(len(x), x.read, conf, block_frames):  # (t, D) each
                        if not np.isfinite(block).all():
                            raise AudioError(f"{src}: features hold NaN or inf")
                        w.extend(block)
                        frames += block.shape[0]
                    if frames == 0:
                        raise AudioError(f"{src}: {len(x) / rate:.3f}s is shorter than one frame")
                    secs = len(x) / rate
                w.commit(secs)
            except AudioError as e:
                if began:
                    w.rollback()
                if not skip_bad:
                    raise AudioError(f"utterance '{utt}': {e} (use --skip-bad to leave it out)") from None
                w.skip(utt, str(e))
                secs = 0.0
            except BaseException:
                if began:
                    w.rollback()
                raise
            n_pending += 1
            s_pending += secs
            if report is not None:
                now = time.monotonic()
                if now - last >= _REPORT_EVERY:
                    report(n_pending, s_pending)
                    n_pending, s_pending, last = 0, 0.0, now
    if report is not None and n_pending:
        report(n_pending, s_pending)
    return json.loads((Path(out) / SHARDS / f"{shard}.done").read_text())


# ----------------------------------------------------------------- the driver
def _prepare(out: Path, conf: FeatureConfig, items: list[Item], data: Path, jobs: int,
             num_shards: int | None, overwrite: bool) -> dict:
    fp = _fingerprint(items)
    plan_path = out / PLAN
    if plan_path.exists() and not overwrite:
        plan = json.loads(plan_path.read_text())
        if plan.get("conf") != conf.to_dict():
            raise UsageError(f"{out} holds features made with another config; "
                             f"use a new folder or --overwrite")
        if plan.get("fingerprint") != fp:
            raise UsageError(f"{out} holds features of other data (utterances or audio differ); "
                             f"use a new folder or --overwrite")
        if num_shards is not None and num_shards != plan["num_shards"]:
            raise UsageError(f"{out} was planned with {plan['num_shards']} shards, not {num_shards}; "
                             f"use --overwrite to start again")
        return plan
    n = num_shards or default_num_shards(len(items), jobs)
    plan = {"version": 1, "num_shards": n, "utterances": len(items), "fingerprint": fp,
            "data": str(data.resolve()), "conf": conf.to_dict()}
    with atomic_write(out / CONF) as f:
        f.write(conf.dump())
    with atomic_write(plan_path) as f:
        json.dump(plan, f, indent=1)
    return plan


def _progress_columns():
    from rich.progress import TextColumn

    return (TextColumn("{task.fields[hours]:.2f} h audio"), TextColumn("{task.fields[xrt]:.0f}x real time"))


def featurize(data: str | os.PathLike, out: str | os.PathLike, conf: FeatureConfig | None = None, *,
              jobs: int = 1, shard: tuple[int, int] | None = None, merge: bool = False,
              skip_bad: bool = False, kaldi: bool = False, overwrite: bool = False,
              num_shards: int | None = None, pipe_timeout: float | None = None,
              block_frames: int | None = None) -> Result:
    """Compute features of data dir ``data`` into the store ``out``.

    ``shard=(i, n)`` does shard ``i`` of ``n`` only (no merge);
    ``merge=True`` only joins finished shards. ``out`` must be missing,
    empty or a store this command made (resumed); ``overwrite`` replaces
    anything else. The run holds a lock on ``out`` (shared between
    ``--shard`` runs). ``pipe_timeout`` bounds each piped ``wav.scp``
    command (seconds); ``block_frames`` is how many frames of a long
    recording are computed at a time. Returns a :class:`Result`.
    """
    t0 = time.monotonic()
    data, out = Path(data), Path(out)
    conf = conf or FeatureConfig.load(None)
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1 (got {jobs})")
    if pipe_timeout is not None and pipe_timeout <= 0:
        raise UsageError(f"--pipe-timeout must be > 0 seconds (got {pipe_timeout:g})")
    d = DataDir.load(data)
    if not d.wav_scp:
        raise DataError(f"{data}: no wav.scp; featurize needs audio")
    items = _items(d)
    if shard is not None:
        i, n = shard
        if not (0 <= i < n):
            raise UsageError(f"--shard {i}/{n}: I must be in 0..{n - 1}")
        num_shards = n
    check_output_dir(out, COMMAND, overwrite, inputs=(data,))
    opts = {"pipe_timeout": pipe_timeout, "block_frames": block_frames}
    plan: dict = {}

    def prepare(alone: bool) -> None:
        # --shard runs that start together prepare one at a time; one that
        # joins runs already writing (alone False) keeps their work even
        # with --overwrite (the first of them cleared the folder)
        replace = overwrite and alone
        prepare_output_dir(out, COMMAND, replace, inputs=(data,))
        plan.update(_prepare(out, conf, items, data, jobs, num_shards, replace))

    try:
        with output_lock(out, shared=shard is not None, prepare=prepare):
            return _featurize_locked(d, data, out, conf, items, plan, t0, jobs=jobs, shard=shard, merge=merge,
                                     skip_bad=skip_bad, kaldi=kaldi, opts=opts)
    except OSError as e:  # disk full, read-only: one line, not a traceback
        raise OutputError(os_error_line(out, e)) from None


def _featurize_locked(d: DataDir, data: Path, out: Path, conf: FeatureConfig, items: list[Item], plan: dict,
                      t0: float, *, jobs: int, shard: tuple[int, int] | None, merge: bool, skip_bad: bool,
                      kaldi: bool, opts: dict) -> Result:
    n = plan["num_shards"]
    wanted = [shard[0]] if shard is not None else list(range(n))
    if merge:
        wanted = []
    elif (out / INDEX).exists() and shard is None:
        log.info(f"{out}: feature store is complete; nothing to do (--overwrite to redo)")
        st = FeatureStore(out)
        return Result(out, len(st), 0, 0, n, 0.0, time.monotonic() - t0, True)
    todo = [i for i in wanted if not shard_done(out, i)]
    finished = len(wanted) - len(todo)
    if finished and todo:
        log.info(f"resuming: {finished} of {len(wanted)} shard(s) already done")
    done_utts, done_secs, skipped = 0, 0.0, 0
    if todo:
        total = sum(shard_bounds(len(items), n, i)[1] - shard_bounds(len(items), n, i)[0] for i in todo)
        jobs = min(jobs, len(todo))
        pool = _ShardPool(jobs, out, items, n, conf, skip_bad, opts) if jobs > 1 else nullcontext()
        with pool, log.progress(*_progress_columns()) as bar:  # the workers start before the bar's thread
            task = bar.add_task("featurize", total=total, hours=0.0, xrt=0.0)
            t_start = time.monotonic()
            state = {"secs": 0.0}

            def report(k: int, s: float) -> None:
                state["secs"] += s
                el = max(time.monotonic() - t_start, 1e-6)
                bar.update(task, advance=k, hours=state["secs"] / 3600, xrt=state["secs"] / el)

            markers = _run(out, items, n, todo, conf, skip_bad, jobs, report, opts, pool if jobs > 1 else None)
        for m in markers:
            done_utts += m["utterances"]
            skipped += m["skipped"]
            done_secs += m.get("seconds", 0.0)
        if skipped:
            log.warn(f"{skipped} utterance(s) skipped; reasons in {out / 'skipped.txt'}")
    merged = False
    if shard is None:
        merge_shards(out, n)
        _copy_tables(d, out)
        if kaldi:
            write_kaldi(out)
        merged = True
    elif merge is False:
        left = [i for i in range(n) if not shard_done(out, i)]
        if not left:
            log.info(f"all {n} shards done; join them with 'asrkit featurize {data} {out} --merge'")
    return Result(out, done_utts, skipped, len(todo), finished, done_secs, time.monotonic() - t0, merged)


def _run(out: Path, items: list[Item], n: int, todo: list[int], conf: FeatureConfig, skip_bad: bool,
         jobs: int, report: Callable[[int, float], None], opts: dict | None = None,
         pool: "_ShardPool | None" = None) -> list[dict]:
    """Featurize shards ``todo``: here, one after the other, or on ``pool``'s
    worker processes when given."""
    conf_dict = conf.to_dict()
    opts = dict(opts or {})
    if pool is not None:
        return pool.run(todo, report)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core, as each worker of --jobs N
    try:
        return [_run_shard(str(out), i, items[slice(*shard_bounds(len(items), n, i))], conf_dict, skip_bad,
                           report, opts) for i in todo]
    finally:
        torch.set_num_threads(threads)


# --jobs N: worker processes. The state a worker needs (set by _init_worker;
# with the fork start method it is inherited, not pickled)
_WORKER: dict = {}


def _init_worker(out: str, items: list[Item], n: int, conf_dict: dict, skip_bad: bool, opts: dict,
                 progress, stop) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it sets ``stop``
    log.forward_to(lambda kind, message: progress.put(("log", kind, message)))
    _WORKER.update(out=out, items=items, n=n, conf_dict=conf_dict, skip_bad=skip_bad, progress=progress,
                   opts={**opts, "stop": stop})


def _shard_task(i: int) -> tuple[int, dict | None]:
    w = _WORKER
    chunk = w["items"][slice(*shard_bounds(len(w["items"]), w["n"], i))]
    try:
        return i, _run_shard(w["out"], i, chunk, w["conf_dict"], w["skip_bad"],
                             lambda k, s: w["progress"].put(("done", k, s)), w["opts"])
    except _Stopped:
        return i, None


class _ShardPool:
    """``jobs`` worker processes, each doing whole shards (the next unstarted
    one when it is free) with torch on one thread. Started before the
    progress bar: with the fork start method the workers are forked from
    this process before it starts any thread of its own (see
    :func:`asrkit.workers.worker_context`). Progress comes back through a
    queue, and so do the workers' log lines. The first error, or Ctrl-C here, sets ``stop``: the other workers
    abandon their shard before their next utterance and remove its partial
    files; whatever a killed worker left of an unfinished shard is cleared
    when the pool closes."""

    def __init__(self, jobs: int, out: Path, items: list[Item], n: int, conf: FeatureConfig, skip_bad: bool,
                 opts: dict):
        from asrkit.workers import worker_context, worker_pool

        self.out, self._started = out, []
        ctx = worker_context(fork=True)
        self._progress, self._stop = ctx.SimpleQueue(), ctx.Event()
        self._cm = worker_pool(jobs, _init_worker, (str(out), items, n, conf.to_dict(), skip_bad, dict(opts),
                                                    self._progress, self._stop), context=ctx)

    def __enter__(self) -> "_ShardPool":
        self._pool = self._cm.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._cm.__exit__(*exc)  # terminates the workers
        finally:
            for i in self._started:
                if not shard_done(self.out, i):
                    clear_shard(self.out, i)

    def _drain(self, report: Callable[[int, float], None]) -> None:
        while not self._progress.empty():
            what, a, b = self._progress.get()
            if what == "log":
                log.relay(a, b)
            else:
                report(a, b)

    def run(self, todo: list[int], report: Callable[[int, float], None]) -> list[dict]:
        import multiprocessing

        self._started = list(todo)
        markers: dict[int, dict | None] = {}
        error: BaseException | None = None
        results = self._pool.imap_unordered(_shard_task, todo)
        got, deadline = 0, None
        while got < len(todo) and (deadline is None or time.monotonic() < deadline):
            try:
                i, markers_i = results.next(timeout=0.1)
                markers[i] = markers_i
                got += 1
            except multiprocessing.TimeoutError:
                pass
            except KeyboardInterrupt as e:  # Ctrl-C here: the workers stop before their next utterance
                error = error or e
                self._stop.set()
                deadline = time.monotonic() + 5.0  # then they are terminated
            except Exception as e:  # noqa: BLE001 -- a worker's error: stop the others, raise it when they have
                got += 1
                if error is None:
                    error = e
                    self._stop.set()
            self._drain(report)
        self._drain(report)
        if error is not None:
            raise error
        return [markers[i] for i in todo]


def merge_only(data: str | os.PathLike, out: str | os.PathLike, kaldi: bool = False) -> dict:
    """``--merge``: join the shards of a store made with ``--shard I/N``."""
    out = Path(out)
    plan_path = out / PLAN
    if not plan_path.exists():
        raise DataError(f"{out}: no {PLAN}; nothing to merge (run featurize --shard I/N first)")
    d = DataDir.load(data)
    with output_lock(out):
        try:
            plan = json.loads(plan_path.read_text())
            if _fingerprint(_items(d)) != plan["fingerprint"]:
                raise UsageError(f"{out} was made from other data than {data}")
            total = merge_shards(out, plan["num_shards"])
            _copy_tables(d, out)
            if kaldi:
                write_kaldi(out)
        except OSError as e:
            raise OutputError(os_error_line(out, e)) from None
    return total


def _copy_tables(d: DataDir, out: Path) -> None:
    """Copy utt2spk/spk2utt/text/ali/utt2dur and ``text.*``/``ali.*`` tables
    (e.g. ``text.phones``) of the stored utterances."""
    st = FeatureStore(out)
    sub = d.subset(st.keys())
    write_table(out / "utt2spk", sub.utt2spk)
    write_table(out / "spk2utt", sub.spk2utt)
    for name, t in (("text", sub.text), ("ali", sub.ali), *sub.extra.items()):
        if t is not None:
            write_table(out / name, t)
    if sub.utt2dur is not None:
        write_table(out / "utt2dur", {u: f"{v:g}" for u, v in sub.utt2dur.items()})


def write_kaldi(out: str | os.PathLike) -> None:
    """Write ``feats.ark``/``feats.scp`` and per-speaker ``cmvn.ark``/``cmvn.scp``
    (Kaldi ``compute-cmvn-stats --spk2utt`` layout) next to the store.
    The .scp files are renamed into place last."""
    import kaldiio

    out = Path(out)
    st = FeatureStore(out)
    for base, write in (("feats", lambda w: [w(u, np.asarray(st[u])) for u in st.keys()]),
                        ("cmvn", lambda w: [w(s, st.cmvn_stats(s).to_kaldi())
                                            for s in sorted(set(st.utt2spk[u] for u in st.keys()),
                                                            key=lambda s: s.encode())])):
        scp_tmp = out / f".{base}.scp.partial"
        with kaldiio.WriteHelper(f"ark,scp:{out / (base + '.ark')},{scp_tmp}") as w:
            write(w)
        os.replace(scp_tmp, out / f"{base}.scp")
