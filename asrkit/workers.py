"""Worker processes (``asrkit decode --jobs``, ``tune --jobs``, ``featurize --jobs``).

Workers are started with the ``forkserver`` method, never by forking the
calling process: by then the caller has torch's OpenMP thread pool (and, for
a search, kenlm) loaded, and a child forked from such a process can
deadlock. (``featurize --jobs`` forks, ``worker_context(fork=True)``: it starts its
workers before it has run any torch op or started a thread of its own,
and each worker sets torch to one thread before its first op, as torch's
own DataLoader workers do; a forked worker starts in milliseconds, where a
forkserver first imports torch, 1-2 s.)
A forkserver child starts from a clean server process, so whatever
a worker needs comes through :func:`worker_pool`'s ``initargs`` (pickled):
units, decoder settings, log-probabilities, a message queue made with
:func:`worker_context`.

Each worker runs torch with one thread (J workers, J cores) and keeps quiet
about warnings its caller has already printed (the caller builds its own
decoder first, so LM and lexicon problems come once, from the caller).

    with worker_pool(4, my_init, (settings,)) as pool:
        for result in pool.imap(my_task, items):    # results in item order
            ...

``my_init`` and ``my_task`` must be module-level functions (pickled by name).
"""
from __future__ import annotations

import multiprocessing
import sys
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any, Callable, Iterator

from asrkit.errors import UsageError

__all__ = ["START_METHOD", "check_jobs", "in_worker", "worker_context", "worker_pool"]

#: How workers start (see the module docstring).
START_METHOD = "forkserver"

_IN_WORKER = False


def check_jobs(jobs: int) -> None:
    """:class:`UsageError` unless ``jobs >= 1``."""
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {jobs}")


def in_worker() -> bool:
    """True inside a :func:`worker_pool` worker (callers skip repeated warnings)."""
    return _IN_WORKER


def _start(initializer: Callable[..., None], initargs: tuple) -> None:
    global _IN_WORKER
    import torch

    _IN_WORKER = True
    torch.set_num_threads(1)
    initializer(*initargs)


def worker_context(fork: bool = False):
    """The multiprocessing context workers start from; make queues and locks
    that go to workers (in ``initargs``) with it. ``fork``: fork the caller
    on Linux (see the module docstring for when that is safe); elsewhere the
    forkserver."""
    if fork and sys.platform.startswith("linux"):  # macOS: forking a process with torch loaded is unsafe
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context(START_METHOD)
    # the server imports torch once (no thread pool runs yet, so forking from it is safe); workers skip that
    ctx.set_forkserver_preload(["torch"])
    return ctx


@contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None], initargs: tuple[Any, ...] = (),
                context=None) -> Iterator[Pool]:
    """A pool of ``jobs`` worker processes, each running torch on one thread
    and set up by ``initializer(*initargs)``; terminated (workers ended) on
    exit. ``context``: the :func:`worker_context` its queues were made with."""
    check_jobs(jobs)
    with (context or worker_context()).Pool(jobs, initializer=_start, initargs=(initializer, initargs)) as pool:
        yield pool
