"""Batched Levenshtein alignment of many token-id sequence pairs with numpy.

The cost model is unit-cost Levenshtein (as Kaldi's ``compute-wer``) with ties
broken towards substitutions, made exact by a lexicographic cost:

    correct 0,  substitution A,  insertion / deletion G = A + 1,   A > r + h

so the optimal cost of a pair is ``A * errors + (ins + del)``: the fewest
errors first, then the fewest insertions + deletions (the most
substitutions). Every optimal path of this DP has the same counts, and the
counts follow from the cost alone::

    errors = cost // A,  ins + del = cost % A,  ins - del = h - r

Speed comes from running the DP for a whole chunk of pairs at once: pairs are
sorted by length, padded to the chunk's longest, and each DP row is a handful
of numpy operations over a ``(H + 1, B)`` slab with the batch innermost.
Padding is harmless: a cell depends only on cells with smaller indices, and
pair ``b``'s result is read at ``D[r_b, h_b, b]``. A vectorized backtrace over
the chunk then writes one op code per alignment column.

Op codes: ``COR`` 0, ``SUB`` 1, ``DEL`` 2 (a reference token with no
hypothesis token), ``INS`` 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COR, SUB, DEL, INS = 0, 1, 2, 3
OP_LETTERS = "CSDI"

# Bound the DP table of one chunk: B * (R + 1) * (H + 1) cells
# (B * 2 * (H + 1) without a backtrace).
_MAX_CELLS = 1 << 23
_MAX_BATCH = 4096
# Below this many pairs a chunk scans the insertions with one accumulate call.
_ACCUMULATE_BELOW = 128

# The largest single pair :func:`align_batch` takes. With a backtrace the DP
# table of a pair is held whole ((r + 1) * (h + 1) cells, at most 256 MB of
# int32 here) and the backtrace walks r + h columns one numpy step at a time;
# counts alone need two rows but still (r + 1) * (h + 1) steps of work. Like
# sclite and Kaldi, asrkit aligns utterances; a recording-long "utterance"
# must be split into segments first.
MAX_PAIR_CELLS = 1 << 26
MAX_PAIR_TOKENS = 1 << 16
MAX_PAIR_CELLS_COUNTS = 1 << 30


def oversized_pairs(
    ref_lens: np.ndarray, hyp_lens: np.ndarray, keep_ops: bool = True
) -> np.ndarray:
    """Indices of the pairs too large to align (see :data:`MAX_PAIR_CELLS`)."""
    r = np.asarray(ref_lens, dtype=np.int64)
    h = np.asarray(hyp_lens, dtype=np.int64)
    cells = (r + 1) * (h + 1)
    if keep_ops:
        bad = (cells > MAX_PAIR_CELLS) | (r + h > MAX_PAIR_TOKENS)
    else:
        bad = cells > MAX_PAIR_CELLS_COUNTS
    return np.flatnonzero(bad)


def pair_limit_text(keep_ops: bool = True) -> str:
    """The limit of :func:`oversized_pairs` in words, for messages."""
    if keep_ops:
        return f"{MAX_PAIR_TOKENS:,} tokens in all or {MAX_PAIR_CELLS:,} alignment cells (ref+1 x hyp+1)"
    return f"{MAX_PAIR_CELLS_COUNTS:,} alignment cells (ref+1 x hyp+1)"


@dataclass
class BatchAlignment:
    """Result of :func:`align_batch` for ``U`` pairs, in input order.

    counts: ``(U, 4)`` int64, columns cor, sub, del, ins.
    ops: flat ``uint8`` op codes of every pair's alignment, concatenated;
        pair ``u``'s ops are ``ops[ops_offsets[u]:ops_offsets[u + 1]]``.
        ``None`` when alignments were not requested.
    ops_offsets: ``(U + 1,)`` int64, or ``None``.
    """

    counts: np.ndarray
    ops: np.ndarray | None
    ops_offsets: np.ndarray | None

    def ops_of(self, u: int) -> np.ndarray:
        """The op codes of pair ``u``, ``(L,)`` uint8."""
        if self.ops is None or self.ops_offsets is None:
            raise ValueError("alignments were not kept (keep_ops=False)")
        return self.ops[self.ops_offsets[u] : self.ops_offsets[u + 1]]


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """``(U,)`` lengths -> ``(U + 1,)`` int64 start offsets."""
    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return off


def align_batch(
    ref_ids: np.ndarray,
    ref_offsets: np.ndarray,
    hyp_ids: np.ndarray,
    hyp_offsets: np.ndarray,
    keep_ops: bool = True,
    max_cells: int = _MAX_CELLS,
    max_batch: int = _MAX_BATCH,
) -> BatchAlignment:
    """Align ``U`` pairs of token-id sequences given as flat arrays.

    Args:
        ref_ids: ``(sum r,)`` integer token ids of all references, concatenated.
        ref_offsets: ``(U + 1,)`` start offsets into ``ref_ids``.
        hyp_ids: ``(sum h,)`` hypothesis token ids (same id space), concatenated.
        hyp_offsets: ``(U + 1,)`` start offsets into ``hyp_ids``.
        keep_ops: also backtrace and return the op codes of each alignment.
        max_cells: memory bound, DP cells per chunk (a single pair larger
            than this still runs, alone).
        max_batch: most pairs per chunk.
    """
    ref_ids = np.asarray(ref_ids, dtype=np.int64)
    hyp_ids = np.asarray(hyp_ids, dtype=np.int64)
    ref_offsets = np.asarray(ref_offsets, dtype=np.int64)
    hyp_offsets = np.asarray(hyp_offsets, dtype=np.int64)
    n = len(ref_offsets) - 1
    if len(hyp_offsets) != n + 1:
        raise ValueError("ref_offsets and hyp_offsets describe different numbers of pairs")
    if n and (ref_ids.min(initial=0) < 0 or hyp_ids.min(initial=0) < 0):
        raise ValueError("token ids must be non-negative")
    rlen = np.diff(ref_offsets)
    hlen = np.diff(hyp_offsets)
    big = oversized_pairs(rlen, hlen, keep_ops)
    if len(big):
        u = int(big[0])
        raise ValueError(
            f"pair {u} ({rlen[u]} x {hlen[u]} tokens) is over the limit of {pair_limit_text(keep_ops)}; "
            "split long utterances"
        )
    counts = np.zeros((n, 4), dtype=np.int64)
    path_len = np.zeros(n, dtype=np.int64)
    chunks: list[tuple[np.ndarray, np.ndarray]] = []  # (pair indices (B,), ops (B, Lmax))

    order = np.lexsort((hlen, rlen))  # by ref length, then hyp length
    s = 0
    while s < n:
        e = min(s + max_batch, n)
        while True:
            idx = order[s:e]
            R = int(rlen[idx].max())
            H = int(hlen[idx].max())
            # cells held per pair: the whole table for a backtrace, else two rows
            per_pair = (R + 1) * (H + 1) if keep_ops else 2 * (H + 1)
            if (e - s) * per_pair <= max_cells or e - s == 1:
                break
            e = s + max(1, max_cells // per_pair)
        ops, L, c = _align_chunk(
            ref_ids, ref_offsets[idx], rlen[idx], hyp_ids, hyp_offsets[idx], hlen[idx], R, H, keep_ops
        )
        counts[idx] = c
        path_len[idx] = L
        if keep_ops:
            chunks.append((idx, ops))
        s = e

    if not keep_ops:
        return BatchAlignment(counts, None, None)
    ops_offsets = offsets_from_lengths(path_len)
    flat = np.empty(int(ops_offsets[-1]), dtype=np.uint8)
    for idx, ops in chunks:
        cols = np.arange(ops.shape[1])[None, :]
        mask = cols < path_len[idx][:, None]  # (B, Lmax)
        flat[(ops_offsets[idx][:, None] + cols)[mask]] = ops[mask]
    return BatchAlignment(counts, flat, ops_offsets)


def _pad(ids: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, width: int, fill: int) -> np.ndarray:
    """Gather ``B`` sequences from a flat array into a ``(B, width)`` padded array."""
    if len(ids) == 0 or width == 0:
        return np.full((len(lengths), width), fill, dtype=np.int64)
    cols = np.arange(width)[None, :]
    mask = cols < lengths[:, None]
    pos = np.where(mask, offsets[:, None] + cols, 0)
    return np.where(mask, ids[pos], fill)


def _align_chunk(ref_ids, r_off, r_len, hyp_ids, h_off, h_len, R: int, H: int, keep_ops: bool):
    """DP (and backtrace) for one chunk of ``B`` pairs padded to ``(R, H)``.

    Returns ``(ops (B, Lmax) uint8 or None, path lengths (B,), counts (B, 4))``.
    """
    B = len(r_len)
    A = R + H + 1  # substitution cost; > r + h for every pair of the chunk
    G = A + 1  # insertion / deletion cost
    # Stored values Dp = D - G*j lie in [-G*H, G*(R+H)]; keep a margin for the sums.
    top = 2 * G * (R + H + 2)
    dtype = np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64
    ref = _pad(ref_ids, r_off, r_len, R, -1)  # (B, R)
    hyp = _pad(hyp_ids, h_off, h_len, H, -2)  # (B, H)
    # token ids must fit the dtype too (compared for equality only)
    top_id = max(int(ref.max(initial=0)), int(hyp.max(initial=0)))
    if top_id >= np.iinfo(dtype).max:
        dtype = np.int32 if top_id < 2**31 - 1 and dtype == np.int16 else np.int64
    ref = ref.astype(dtype)
    hyp = hyp.astype(dtype)
    ref_t = np.ascontiguousarray(ref.T)  # (R, B)
    hyp_t = np.ascontiguousarray(hyp.T)  # (H, B)

    # Dp[i, j, b] = D[i, j] - G*j for pair b. In these shifted values
    #   Dp[i, j] = min(Dp[i-1, j-1] + A*ne(i, j) - G,  Dp[i-1, j] + G,  Dp[i, j-1])
    # so the insertion term is a plain running minimum along j.
    rows = R + 1 if keep_ops else 2  # without a backtrace, two rows suffice
    Dp = np.empty((rows, H + 1, B), dtype=dtype)
    Dp[0] = 0
    ne = np.empty((H, B), dtype=dtype)
    up = np.empty((H, B), dtype=dtype)
    b = np.arange(B)
    cost = np.zeros(B, dtype=np.int64)
    # pairs whose last row is i: their cost is read as soon as row i is done
    ends = {int(i): np.flatnonzero(r_len == i) for i in np.unique(r_len)}
    if 0 in ends:
        cost[ends[0]] = 0
    scan_by_column = B >= _ACCUMULATE_BELOW
    for i in range(1, R + 1):
        prev = Dp[(i - 1) % rows]  # (H + 1, B)
        row = Dp[i % rows]
        np.not_equal(hyp_t, ref_t[i - 1], out=ne, casting="unsafe")  # (H, B) 0/1
        ne *= A
        ne += prev[:-1]  # diagonal (+ G): correct or substitution
        np.add(prev[1:], 2 * G, out=up)  # deletion (+ G)
        np.minimum(ne, up, out=row[1:])
        row -= G
        row[0] = i * G
        # insertions: running minimum along j. With many pairs, H calls over
        # (B,) rows beat numpy's strided accumulate; with few, one call wins.
        if scan_by_column:
            for j in range(1, H + 1):
                np.minimum(row[j], row[j - 1], out=row[j])
        else:
            np.minimum.accumulate(row, axis=0, out=row)
        done = ends.get(i)
        if done is not None:
            cost[done] = row[h_len[done], done]
    cost += G * h_len  # (B,) = D[r, h]

    errors = cost // A
    indel = cost % A
    ins = (indel + h_len - r_len) // 2
    dele = indel - ins
    sub = errors - indel
    cor = r_len - sub - dele
    counts = np.stack([cor, sub, dele, ins], axis=1)
    L = r_len + ins  # alignment columns
    if not keep_ops:
        return None, L, counts

    Lmax = int(L.max()) if B else 0
    ops = np.zeros((B, Lmax), dtype=np.uint8)
    if B == 1:  # one long pair: scalar steps are ~50x cheaper than (1,)-array ones
        ops[0] = _backtrace_one(Dp[:, :, 0], ref[0].tolist(), hyp[0].tolist(), int(r_len[0]), int(h_len[0]), A, G)
        return ops, L, counts
    # One padding column more, so that index -1 (read when i == 0 or j == 0) exists.
    refx = np.concatenate([ref, np.full((B, 1), -1, dtype=dtype)], axis=1)  # (B, R + 1)
    hypx = np.concatenate([hyp, np.full((B, 1), -2, dtype=dtype)], axis=1)  # (B, H + 1)
    i = r_len.copy()
    j = h_len.copy()
    pos = L - 1
    for _ in range(Lmax):
        act = pos >= 0
        d = Dp[i, j, b].astype(np.int64)
        im1 = i - 1  # -1 wraps around; such cells are masked below
        jm1 = j - 1
        eq = refx[b, im1] == hypx[b, jm1]
        diag_ok = (i > 0) & (j > 0) & (Dp[im1, jm1, b] + np.where(eq, -G, A - G) == d)
        del_ok = (i > 0) & (Dp[im1, j, b] + G == d)
        code = np.where(diag_ok, np.where(eq, COR, SUB), np.where(del_ok, DEL, INS)).astype(np.uint8)
        ops[b[act], pos[act]] = code[act]
        i -= (code != INS) & act
        j -= (code != DEL) & act
        pos -= 1
    return ops, L, counts


def _backtrace_one(D: np.ndarray, ref: list[int], hyp: list[int], i: int, j: int, A: int, G: int) -> np.ndarray:
    """The backtrace of :func:`_align_chunk` for a single pair; ``D`` is its ``(R + 1, H + 1)`` table."""
    out = bytearray()
    get = D.item
    while i > 0 or j > 0:
        d = get(i, j)
        if i > 0 and j > 0:
            eq = ref[i - 1] == hyp[j - 1]
            if get(i - 1, j - 1) + (-G if eq else A - G) == d:
                out.append(COR if eq else SUB)
                i -= 1
                j -= 1
                continue
        if i > 0 and get(i - 1, j) + G == d:
            out.append(DEL)
            i -= 1
        else:
            out.append(INS)
            j -= 1
    out.reverse()
    return np.frombuffer(bytes(out), dtype=np.uint8)
