"""DistributedDataParallel plumbing.

``torchrun --nproc-per-node N -m asrkit train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the
trainer reads them (:func:`env`) and joins the process group (gloo on CPU,
nccl on CUDA). ``asrkit train ... --nproc N`` is a shortcut that starts the N
processes itself on this machine (:func:`launch`).
"""
from __future__ import annotations

import os
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from asrkit.errors import AsrkitError, TrainingError

__all__ = ["Dist", "env", "init", "launch"]


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def env() -> Dist:
    """Rank, world size and local rank from torchrun's environment variables."""
    try:
        return Dist(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                    int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise TrainingError("RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None


def init(d: Dist, device: torch.device) -> None:
    """Join the process group (no-op for a single process)."""
    if not d.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=d.rank, world_size=d.world_size)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple, kwargs: dict, q) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from asrkit import log

    quiet = kwargs.pop("_quiet", False)
    log.set_quiet(quiet or rank != 0)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    try:
        fn(*args, **kwargs)
        shutdown()
    except AsrkitError as e:
        q.put((rank, type(e).__name__, str(e), e.exit_code))
        raise SystemExit(1)
    except BaseException as e:  # noqa: BLE001 - report any failure to the parent
        q.put((rank, type(e).__name__, "".join(traceback.format_exception(e)), 1))
        raise SystemExit(1)
    # Done, and everything the run wrote is closed or flushed (the trainer flushes each log line and
    # closes its files). The interpreter's teardown is skipped: with gloo's threads still being torn
    # down it could abort ("terminate called without an active exception", exit -6) after a
    # successful run, which the parent must count as a failure.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    q.put((rank, None, None, 0))  # a SimpleQueue's put has written to the pipe when it returns
    os._exit(0)


def launch(nproc: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``fn(*args, **kwargs)`` in ``nproc`` fresh processes forming one
    process group on this machine; raise the first failure as an AsrkitError."""
    import multiprocessing as mp
    import time

    from asrkit import log

    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    port = _free_port()
    kwargs = dict(kwargs, _quiet=log.is_quiet())
    procs = [ctx.Process(target=_child, args=(r, nproc, port, fn, args, kwargs, q), daemon=False)
             for r in range(nproc)]
    for p in procs:
        p.start()
    results: dict[int, tuple] = {}
    try:
        while True:
            while not q.empty():
                r = q.get()
                results[r[0]] = r
            failed = [r for r in results.values() if r[1] is not None]
            alive = [p for p in procs if p.is_alive()]
            if failed or any(p.exitcode not in (None, 0) for p in procs):
                for p in alive:  # one rank failed: the others would wait for it forever
                    p.terminate()
                break
            if not alive:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            p.join()
        while not q.empty():
            r = q.get()
            results[r[0]] = r
    failed = sorted((r for r in results.values() if r[1] is not None), key=lambda r: r[0])
    if failed:
        rank, name, msg, _ = failed[0]
        import asrkit.errors as E

        cls = getattr(E, name, None)
        if name == "UnknownWordError":
            cls = E.DataError
        if isinstance(cls, type) and issubclass(cls, AsrkitError):
            raise cls(msg)
        raise TrainingError(f"rank {rank} failed: {msg.strip().splitlines()[-1]}\n{msg}")
    bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if bad:
        raise TrainingError(f"training process(es) exited abnormally: "
                            f"{', '.join(f'rank {i} (exit {c})' for i, c in bad)}")
