"""The batched aligner against an independent pure-Python Levenshtein."""
from __future__ import annotations

import random

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from asrkit.score.align import COR, DEL, INS, SUB, align_batch, offsets_from_lengths


def _python_counts(r: list[int], h: list[int]) -> tuple[int, int, int, int]:
    """Textbook DP over tuple costs (errors, ins + del), compared as tuples:
    the fewest errors, then the most substitutions. Independent of the
    lexicographic integer trick used by align_batch."""
    R, H = len(r), len(h)
    # each cell: (errors, indels, cor, sub, dele, ins)
    D = [[None] * (H + 1) for _ in range(R + 1)]
    D[0][0] = (0, 0, 0, 0, 0, 0)
    for j in range(1, H + 1):
        D[0][j] = (j, j, 0, 0, 0, j)
    for i in range(1, R + 1):
        D[i][0] = (i, i, 0, 0, i, 0)
        for j in range(1, H + 1):
            e, n, c, s, d, ins = D[i - 1][j - 1]
            diag = (e, n, c + 1, s, d, ins) if r[i - 1] == h[j - 1] else (e + 1, n, c, s + 1, d, ins)
            e, n, c, s, d, ins = D[i - 1][j]
            up = (e + 1, n + 1, c, s, d + 1, ins)
            e, n, c, s, d, ins = D[i][j - 1]
            left = (e + 1, n + 1, c, s, d, ins + 1)
            D[i][j] = min(diag, up, left, key=lambda t: (t[0], t[1]))
    return D[R][H][2:]


def _flat(pairs):
    ref = np.array([t for r, _ in pairs for t in r], dtype=np.int64)
    hyp = np.array([t for _, h in pairs for t in h], dtype=np.int64)
    ro = offsets_from_lengths(np.array([len(r) for r, _ in pairs]))
    ho = offsets_from_lengths(np.array([len(h) for _, h in pairs]))
    return ref, ro, hyp, ho


def _replay(r, h, ops):
    """Check an op sequence is a valid alignment of r and h; return its counts."""
    i = j = 0
    counts = [0, 0, 0, 0]
    for op in ops:
        counts[op] += 1
        if op in (COR, SUB):
            assert (r[i] == h[j]) == (op == COR)
            i += 1
            j += 1
        elif op == DEL:
            i += 1
        else:
            assert op == INS
            j += 1
    assert (i, j) == (len(r), len(h))
    return tuple(counts)


def _random_pairs(n, seed, alphabet=3, max_len=9):
    rng = random.Random(seed)
    # a small alphabet makes ties between alignments frequent
    return [
        (
            [rng.randrange(alphabet) for _ in range(rng.randint(0, max_len))],
            [rng.randrange(alphabet) for _ in range(rng.randint(0, max_len))],
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("max_batch", [7, 4096])  # few pairs per chunk (accumulate) / many (column scan)
def test_counts_match_independent_levenshtein(max_batch):
    pairs = _random_pairs(1500, seed=max_batch)
    res = align_batch(*_flat(pairs), max_batch=max_batch)
    for u, (r, h) in enumerate(pairs):
        want = _python_counts(r, h)
        assert tuple(res.counts[u]) == want, (r, h)
        # total errors are the plain Levenshtein distance (a peer library)
        assert sum(want[1:]) == Levenshtein.distance(r, h)
        assert _replay(r, h, res.ops_of(u)) == want


def test_ties_prefer_substitutions():
    # "a b" vs "b c": 2 errors either as 2 substitutions or as del a + ins c
    res = align_batch(*_flat([([0, 1], [1, 2])]))
    assert tuple(res.counts[0]) == (0, 2, 0, 0)
    assert list(res.ops_of(0)) == [SUB, SUB]


def test_without_ops_same_counts_and_memory_bound():
    pairs = _random_pairs(600, seed=3, alphabet=5, max_len=30)
    full = align_batch(*_flat(pairs))
    lean = align_batch(*_flat(pairs), keep_ops=False, max_cells=500)
    assert lean.ops is None
    np.testing.assert_array_equal(full.counts, lean.counts)
    small = align_batch(*_flat(pairs), max_cells=200)  # single-pair chunks larger than the bound
    np.testing.assert_array_equal(full.counts, small.counts)
    np.testing.assert_array_equal(full.ops, small.ops)


def test_large_ids_and_long_pairs():
    rng = random.Random(5)
    big = 10**9  # ids beyond int16/int32 ranges must not collide
    r = [big + rng.randrange(4) for _ in range(300)]
    h = [t if rng.random() < 0.8 else big + 7 for t in r if rng.random() < 0.9]
    pairs = [(r, h), ([big, 1], [1 + 2**16, 1])]
    res = align_batch(*_flat(pairs))
    assert tuple(res.counts[0]) == _python_counts(r, h)
    assert tuple(res.counts[1]) == (1, 1, 0, 0)


def test_empty_pairs():
    pairs = [([], []), ([1, 2], []), ([], [3]), ([], [])]
    res = align_batch(*_flat(pairs))
    assert res.counts.tolist() == [[0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert [list(res.ops_of(u)) for u in range(4)] == [[], [DEL, DEL], [INS], []]
    none = align_batch(np.zeros(0), np.zeros(1), np.zeros(0), np.zeros(1))
    assert none.counts.shape == (0, 4) and len(none.ops) == 0
