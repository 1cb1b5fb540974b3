"""Language-model training data: a token stream cut into blocks, and dev sentences.

The training text's sentences, as unit ids, are joined into one stream with
id 0 (the sentence boundary, ``<eos>`` / ``<sos>``) before, between and after
them::

    stream   0 a b c 0 d e 0 f g h i 0          (N tokens)
    block k  inputs stream[s_k : e_k], targets stream[s_k + 1 : e_k + 1]

The blocks tile the stream, so every token after the first is a target exactly
once per epoch. ``bptt`` fixes their length (the last one may be shorter);
``variable=True`` draws the lengths anew each epoch as AWD-LSTM does (Merity
et al. 2018): ``bptt`` with probability 0.95, else ``bptt / 2``, plus
Gaussian noise of standard deviation 5, kept within ``[min(5, bptt), bptt +
10]``. Blocks are stateless: each starts from an empty history (no hidden
state is carried from one block to the next), so the batches may be shuffled
and split between processes freely.

* :class:`TextBlocks` — the dataset: item ``i`` is block ``i`` of the epoch
  (:meth:`TextBlocks.set_epoch`).
* :class:`BlockBatchPlan` — the batches of an epoch: ``batch_blocks`` blocks
  each, shuffled by ``(seed, epoch)``; every rank takes every
  ``world_size``-th block of each global batch; the global normalizer is the
  batch's targets. The same interface as
  :class:`asrkit.data.dataset.FrameBatchSampler` (``set_epoch(epoch, start)``
  resumes at a global batch).
* :class:`Sentences` — dev sentences, one item per sentence (``0 w1 .. wn``
  predicting ``w1 .. wn 0``); one longer than a model's ``max_len`` becomes
  windows of ``max_len`` inputs overlapping by half, each scoring the targets
  after the window before it (as :mod:`asrkit.lm.neural` scores sentences).
* :func:`collate_blocks` — pads items into a :class:`TokenBatch`.

::

    blocks = TextBlocks(stream, bptt=35, variable=False, seed=0)
    plan = BlockBatchPlan(blocks, batch_blocks=32, seed=0)
    blocks.set_epoch(3); plan.set_epoch(3)
    for idx, norm in plan:
        batch = collate_blocks([blocks[i] for i in idx])     # inputs (B, L), targets (B, L)
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["BlockBatchPlan", "Sentences", "TextBlocks", "TokenBatch", "TokenItem", "block_bounds",
           "collate_blocks", "join_sentences"]

#: the padding of a batch's targets (cross entropy ignores it)
IGNORE = -100
#: AWD-LSTM's variable length: standard deviation, shortest block, longest above bptt
VAR_STD, VAR_MIN, VAR_OVER = 5.0, 5, 10


def join_sentences(sentences: Sequence[Sequence[int]]) -> np.ndarray:
    """One stream ``0 s1 0 s2 ... 0 sn 0`` (int64) of sentences of unit ids."""
    n = sum(len(s) for s in sentences) + len(sentences) + 1
    out = np.zeros(n, dtype=np.int64)
    k = 1
    for s in sentences:
        out[k:k + len(s)] = s
        k += len(s) + 1
    return out


def block_bounds(n_tokens: int, bptt: int, variable: bool = False, seed: int = 0,
                 epoch: int = 0) -> np.ndarray:
    """The start of every block and the end (``(K + 1,)`` int64, ``starts = b[:-1]``,
    ``ends = b[1:]``) tiling the ``n_tokens - 1`` inputs of a stream. Fixed
    length ``bptt``, or AWD-LSTM's variable lengths drawn with
    ``random.Random((seed, epoch))`` (the module docstring). A pure function of
    its arguments."""
    last = n_tokens - 1  # inputs 0 .. N-2 (the last token is only a target)
    if last <= 0:
        return np.zeros(1, dtype=np.int64)
    if not variable:
        return np.append(np.arange(0, last, bptt, dtype=np.int64), last)
    rng = random.Random(f"{seed}/{epoch}/bptt")
    lo, hi = min(VAR_MIN, bptt), bptt + VAR_OVER
    bounds = [0]
    pos = 0
    while pos < last:
        base = bptt if rng.random() < 0.95 else bptt / 2
        length = min(hi, max(lo, int(round(rng.gauss(base, VAR_STD)))))
        pos = min(last, pos + length)
        bounds.append(pos)
    return np.asarray(bounds, dtype=np.int64)


@dataclass
class TokenItem:
    """One block or sentence window: ``tokens (L + 1,)`` int64, inputs ``tokens[:-1]``,
    targets ``tokens[1:]`` of which the first ``skip`` are context only (not
    scored); ``name`` for messages (``block-17``, a sentence's id)."""

    index: int
    name: str
    tokens: torch.Tensor
    skip: int = 0


@dataclass
class TokenBatch:
    """Padded token rows: ``inputs (B, L)`` (padded with 0), ``targets (B, L)``
    (-100 where nothing is scored: padding, a window's context), ``lengths
    (B,)`` (inputs per row); ``utts`` the items' names."""

    utts: list[str]
    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    indices: list[int] = field(default_factory=list)

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.utts, self.inputs.to(device, non_blocking=True),
                          self.targets.to(device, non_blocking=True), self.lengths.to(device), self.indices)

    @property
    def num_tokens(self) -> int:
        """The targets the batch scores (padding and context not counted)."""
        return int((self.targets != IGNORE).sum())


def collate_blocks(items: Sequence[TokenItem]) -> TokenBatch:
    """Pad ``items`` into a :class:`TokenBatch`."""
    lengths = torch.tensor([len(it.tokens) - 1 for it in items], dtype=torch.int64)
    L = int(lengths.max()) if len(items) else 0
    inputs = torch.zeros(len(items), L, dtype=torch.int64)
    targets = torch.full((len(items), L), IGNORE, dtype=torch.int64)
    for b, it in enumerate(items):
        n = len(it.tokens) - 1
        inputs[b, :n] = it.tokens[:-1]
        targets[b, it.skip:n] = it.tokens[1 + it.skip:]
    return TokenBatch([it.name for it in items], inputs, targets, lengths, [it.index for it in items])


class TextBlocks(torch.utils.data.Dataset):
    """The blocks of a token ``stream`` (see the module docstring); call
    :meth:`set_epoch` before each epoch (the variable lengths change with it)."""

    def __init__(self, stream: np.ndarray, bptt: int, variable: bool = False, seed: int = 0) -> None:
        if bptt < 1:
            raise ValueError(f"bptt must be >= 1 (got {bptt})")
        self.stream = np.ascontiguousarray(stream, dtype=np.int64)
        self.bptt, self.variable, self.seed = int(bptt), bool(variable), int(seed)
        self.epoch = -1
        self.bounds = np.zeros(1, dtype=np.int64)
        self._cache: tuple[int, np.ndarray] | None = None
        self.set_epoch(0)

    def layout(self, epoch: int) -> np.ndarray:
        """The block bounds of ``epoch`` (:func:`block_bounds`; fixed ones are the same every epoch)."""
        key = epoch if self.variable else 0
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, block_bounds(len(self.stream), self.bptt, self.variable, self.seed, key))
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.bounds = self.layout(epoch)

    def lengths(self, epoch: int) -> np.ndarray:
        """The targets of each block of ``epoch``."""
        return np.diff(self.layout(epoch))

    @property
    def num_targets(self) -> int:
        return max(0, len(self.stream) - 1)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __getitem__(self, i: int) -> TokenItem:
        s, e = int(self.bounds[i]), int(self.bounds[i + 1])
        return TokenItem(i, f"block-{i}", torch.from_numpy(self.stream[s:e + 1].copy()))


class BlockBatchPlan:
    """The global batches of an epoch of :class:`TextBlocks`: ``batch_blocks``
    blocks each, in an order shuffled by ``(seed, epoch)`` (``shuffle``) or
    in stream order. A last batch of fewer blocks than ``world_size`` joins
    the one before it, so every rank has a block of every batch. Iterating
    yields ``(this rank's block indices, the global batch's targets)`` from
    global batch ``start`` on (:meth:`set_epoch`)."""

    def __init__(self, blocks: TextBlocks, batch_blocks: int, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        if batch_blocks < world_size:
            raise ValueError(f"batch_blocks={batch_blocks} is less than world_size={world_size}")
        self.blocks, self.batch_blocks, self.shuffle = blocks, int(batch_blocks), shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.start = 0, 0
        self._cache: tuple[int, list[list[int]], np.ndarray] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> list[list[int]]:
        return self._plan()[0]

    def _plan(self) -> tuple[list[list[int]], np.ndarray]:
        if self._cache is None or self._cache[0] != self.epoch:
            lengths = self.blocks.lengths(self.epoch)
            order = list(range(len(lengths)))
            if self.shuffle:
                random.Random(f"{self.seed}/{self.epoch}/blocks").shuffle(order)
            batches = [order[k:k + self.batch_blocks] for k in range(0, len(order), self.batch_blocks)]
            if len(batches) > 1 and len(batches[-1]) < self.world_size:
                batches[-2].extend(batches.pop())
            self._cache = (self.epoch, batches, lengths)
        return self._cache[1], self._cache[2]

    def __len__(self) -> int:
        return len(self.global_batches())

    def __iter__(self) -> Iterator[tuple[list[int], float]]:
        batches, lengths = self._plan()
        for b in batches[self.start:]:
            yield b[self.rank::self.world_size], float(sum(int(lengths[i]) for i in b))


class Sentences(torch.utils.data.Dataset):
    """Dev sentences of unit ids, each fed as ``0 w1 .. wn`` and scored on
    ``w1 .. wn 0`` from an empty history. A sentence of more than ``max_len``
    inputs is scored in windows of ``max_len`` inputs, each starting
    ``max_len // 2`` before the end of the one before it and scoring only
    what that one did not (so every target after the first window has at
    least ``max_len // 2`` tokens of context). ``lengths``: the inputs of
    each item (for length-sorted batches). ``words`` and
    ``oov`` (words outside a word vocabulary, None for subword units) are the
    text's, for word-level perplexity; ``num_sentences`` counts the sentences."""

    def __init__(self, sentences: Sequence[Sequence[int]], names: Sequence[str],
                 max_len: int | None = None, *, words: int = 0, oov: int | None = None) -> None:
        self.num_sentences, self.words, self.oov = len(sentences), int(words), oov
        self.pieces: list[tuple[str, np.ndarray, int]] = []
        for name, s in zip(names, sentences):
            row = join_sentences([s])  # 0 s 0
            n = len(row) - 1
            window = n if max_len is None else max(1, int(max_len))
            keep = window // 2
            done = start = 0
            while done < n:
                end = min(start + window, n)
                self.pieces.append((name, row[start:end + 1], done - start))
                done, start = end, max(0, end - keep)
        self.lengths = [len(t) - 1 for _, t, _ in self.pieces]
        self.utts = [name for name, _, _ in self.pieces]

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, i: int) -> TokenItem:
        name, tokens, skip = self.pieces[i]
        return TokenItem(i, name, torch.from_numpy(tokens.copy()), skip)
