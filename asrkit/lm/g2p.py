"""Grapheme-to-phoneme conversion: a joint-sequence ("graphone") n-gram model.

Pronunciations for words a lexicon lacks, learned from a lexicon (the shipped
CMU dict by default). The model is the one of Bisani & Ney's joint-sequence
models in its simplest trained form (as Phonetisaurus builds it):

1. **Alignment.** Every training pair (word letters, phones) is segmented
   into *graphones*: a chunk of 1 or 2 letters with 0, 1 or 2 phones
   (:data:`CHUNKS`: 1:0, 1:1, 1:2, 2:1). The segmentation is learned by EM
   over all segmentations of all pairs (forward-backward over the
   letter x phone grid, a joint unigram distribution over graphones), then
   each pair takes its most likely (Viterbi) segmentation. Pairs that no
   segmentation explains (more than two phones per letter) are left out.
2. **n-gram.** The graphone sequences are the sentences of an interpolated
   modified Kneser-Ney n-gram (:mod:`asrkit.lm.kneser_ney`, the estimator of
   ``asrkit lm build``), written as ARPA.
3. **Decoding.** For a new word, a beam search over the letters: at each
   letter position every graphone whose letters match the next 1 or 2
   letters extends every hypothesis, scored by the n-gram (kenlm);
   hypotheses with the same phones and the same n-gram state recombine.
   The best hypotheses after ``</s>`` give the pronunciations.

A model is a folder (never code): ``g2p.json`` (the letters, phones,
graphone inventory, order, how it was trained and its held-out scores) and
``graphones.arpa``. Letters are the lower-cased characters of the words;
characters never seen in training cannot be pronounced.

The held-out split of :func:`train` is a fixed rule on the word itself:
a word is held out when ``crc32(lower-cased word) % 100 < heldout``
(every pronunciation of a held-out word is held out with it).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from asrkit import log
from asrkit.errors import DataError, InputError, UsageError, quote
from asrkit.io import atomic_write, display_name
from asrkit.lm.counts import EOS, NgramCounter, Vocabulary
from asrkit.lm.kneser_ney import estimate

#: The (letters, phones) chunk sizes a graphone may have.
CHUNKS: tuple[tuple[int, int], ...] = ((1, 0), (1, 1), (1, 2), (2, 1))
FORMAT = "asrkit-g2p"
VERSION = 1
MODEL_JSON = "g2p.json"
MODEL_ARPA = "graphones.arpa"
#: the phone side of a graphone with no phones, in graphone names
EPS = "_"


# -- data -------------------------------------------------------------------


def heldout_word(word: str, percent: float) -> bool:
    """The split rule: ``word`` is held out when crc32 of its lower-cased
    UTF-8 spelling, mod 100, is below ``percent``."""
    return zlib.crc32(word.lower().encode("utf-8")) % 100 < percent


def lexicon_pairs(lex) -> list[tuple[str, tuple[str, ...]]]:
    """``(lower-cased word, phones)`` for every pronunciation of a
    :class:`asrkit.data.lexicon.Lexicon`, in the lexicon's order."""
    out = []
    for w in lex.words():
        for pron in lex.prons(w):
            if pron:
                out.append((w.lower(), tuple(pron)))
    return out


def split_pairs(pairs: Sequence[tuple[str, tuple[str, ...]]], heldout: float):
    """``(train, test)`` pairs by :func:`heldout_word`."""
    train, test = [], []
    for p in pairs:
        (test if heldout_word(p[0], heldout) else train).append(p)
    return train, test


# -- alignment (EM over graphone segmentations) -----------------------------


@dataclass
class _Group:
    """Pairs of one word length L (phones padded to the group's longest, M):
    ids[e] (B, L+1, M+1) is the graphone id of chunk e ending at cell (i, j),
    -1 where it does not fit (also past a pair's own phone count)."""

    index: np.ndarray  # (B,) positions in the pair list
    ids: list[np.ndarray]
    L: int
    M: int
    ends: np.ndarray  # (B,) phones of each pair: its end cell is (L, ends[b])


def _graphone_keys(pairs, letters: dict[str, int], phones: dict[str, int]):
    """Group the pairs by shape and give every chunk that fits a graphone key."""
    A, P = len(letters) + 1, len(phones) + 1
    shapes: dict[tuple[int, int], list[int]] = {}
    for n, (w, pron) in enumerate(pairs):  # by length, phone counts in bands of 4: little padding, few groups
        shapes.setdefault((len(w), len(pron) // 4), []).append(n)
    groups = []
    for (L, _), idx in sorted(shapes.items()):
        ends = np.array([len(pairs[n][1]) for n in idx], dtype=np.int64)
        M = int(ends.max())
        B = len(idx)
        let = np.zeros((B, L), dtype=np.int64)
        ph = np.zeros((B, M), dtype=np.int64)
        for b, n in enumerate(idx):
            w, pron = pairs[n]
            let[b] = [letters[c] for c in w]
            ph[b, : len(pron)] = [phones[p] for p in pron]
        keys = []
        for dg, dp in CHUNKS:
            k = np.full((B, L + 1, M + 1), -1, dtype=np.int64)
            for i in range(dg, L + 1):
                g = let[:, i - 1] if dg == 1 else A + let[:, i - 2] * A + let[:, i - 1]
                for j in range(dp, M + 1):
                    p = np.zeros(B, dtype=np.int64)
                    for t in range(j - dp, j):
                        p = p * P + ph[:, t]
                    k[:, i, j] = np.where(j <= ends, (g * P ** 3 + p) * 4 + dp, -1)
            keys.append(k)
        groups.append(_Group(index=np.asarray(idx), ids=keys, L=L, M=M, ends=ends))
    return groups


def _forward(g: _Group, theta: np.ndarray, viterbi: bool = False):
    """alpha (B, L+1, M+1) and, with ``viterbi``, the chunk chosen at each cell."""
    B = len(g.index)
    alpha = np.zeros((B, g.L + 1, g.M + 1))
    alpha[:, 0, 0] = 1.0
    back = np.full((B, g.L + 1, g.M + 1), -1, dtype=np.int8) if viterbi else None
    for i in range(1, g.L + 1):
        for j in range(0, g.M + 1):
            best = np.zeros(B)
            for e, (dg, dp) in enumerate(CHUNKS):
                if i < dg or j < dp:
                    continue
                ids = g.ids[e][:, i, j]
                s = alpha[:, i - dg, j - dp] * theta[np.maximum(ids, 0)] * (ids >= 0)
                if viterbi:
                    better = s > best
                    best = np.where(better, s, best)
                    back[:, i, j] = np.where(better, e, back[:, i, j])
                else:
                    best += s
            alpha[:, i, j] = best
    return alpha, back


def _backward(g: _Group, theta: np.ndarray) -> np.ndarray:
    B = len(g.index)
    beta = np.zeros((B, g.L + 1, g.M + 1))
    for i in range(g.L, -1, -1):
        for j in range(g.M, -1, -1):
            acc = (g.ends == j).astype(np.float64) if i == g.L else np.zeros(B)
            for e, (dg, dp) in enumerate(CHUNKS):
                if i + dg > g.L or j + dp > g.M:
                    continue
                ids = g.ids[e][:, i + dg, j + dp]
                acc += theta[np.maximum(ids, 0)] * (ids >= 0) * beta[:, i + dg, j + dp]
            beta[:, i, j] = acc
    return beta


def align(pairs, letters, phones, iterations: int = 8, progress: bool = False):
    """EM-align ``pairs``; returns ``(graphones, sequences, loglik)``:
    the graphone inventory (list of ``(letters, phones)``), one list of
    graphone indices per pair (``None`` for a pair no segmentation explains)
    and the log-likelihood per EM iteration."""
    groups = _graphone_keys(pairs, letters, phones)
    allkeys = np.unique(np.concatenate([k[k >= 0] for g in groups for k in g.ids]))
    for g in groups:
        g.ids = [np.where(k >= 0, np.searchsorted(allkeys, k), -1).astype(np.int32) for k in g.ids]
    G = len(allkeys)
    theta = np.full(G, 1.0 / G)
    history = []
    for it in range(iterations):
        counts = np.zeros(G)
        total = 0.0
        for g in groups:
            alpha, _ = _forward(g, theta)
            beta = _backward(g, theta)
            Z = alpha[np.arange(len(g.index)), g.L, g.ends]
            ok = Z > 0
            total += float(np.log(Z[ok]).sum())
            inv = np.where(ok, 1.0 / np.where(ok, Z, 1.0), 0.0)[:, None, None]
            for e, (dg, dp) in enumerate(CHUNKS):
                ids = g.ids[e]
                a = np.zeros_like(alpha)
                a[:, dg:, dp:] = alpha[:, : g.L + 1 - dg, : g.M + 1 - dp]
                post = a * theta[np.maximum(ids, 0)] * beta * inv * (ids >= 0)
                m = post > 0
                counts += np.bincount(ids[m], weights=post[m], minlength=G)
        theta = counts / counts.sum()
        theta = np.maximum(theta, 1e-12)
        history.append(total)
        if progress:
            log.info(f"alignment EM iteration {it + 1}: log-likelihood {total:.1f}")
    # Viterbi segmentation of every pair
    seqs: list[list[int] | None] = [None] * len(pairs)
    for g in groups:
        alpha, back = _forward(g, theta, viterbi=True)
        ok = alpha[np.arange(len(g.index)), g.L, g.ends] > 0
        B = len(g.index)
        i = np.full(B, g.L)
        j = g.ends.copy()
        steps: list[np.ndarray] = []
        rows = np.arange(B)
        dgs = np.array([c[0] for c in CHUNKS])
        dps = np.array([c[1] for c in CHUNKS])
        while (i > 0).any():
            live = i > 0
            e = np.where(live & ok, back[rows, i, j], 0).astype(np.int64)
            gid = np.full(B, -1, dtype=np.int64)
            stack = np.stack([k[rows, i, j] for k in g.ids])  # (E, B)
            gid[live] = stack[e[live], rows[live]]
            steps.append(gid)
            i = np.where(live, i - dgs[e], i)
            j = np.where(live, j - dps[e], j)
        mat = np.stack(steps[::-1], axis=1) if steps else np.zeros((B, 0), dtype=np.int64)
        for b in range(B):
            if ok[b]:
                seqs[g.index[b]] = [int(x) for x in mat[b] if x >= 0]
    # decode keys back to (letters, phones)
    inv_letters = {v: k for k, v in letters.items()}
    inv_phones = {v: k for k, v in phones.items()}
    A, P = len(letters) + 1, len(phones) + 1
    graphones = []
    for key in allkeys.tolist():
        dp = key % 4
        key //= 4
        p = key % (P ** 3)
        gk = key // (P ** 3)
        if gk >= A:  # two letters
            gk -= A
            gl = inv_letters[gk // A] + inv_letters[gk % A]
        else:
            gl = inv_letters[gk]
        ph = []
        for _ in range(dp):
            ph.append(inv_phones[p % P])
            p //= P
        graphones.append((gl, tuple(reversed(ph))))
    return graphones, seqs, history


def graphone_name(letters: str, phones: Sequence[str]) -> str:
    """How a graphone is written in the ARPA file: ``ph}f``, ``x}k|s``, ``e}_``."""
    return f"{letters}}}{'|'.join(phones) if phones else EPS}"


# -- the model ----------------------------------------------------------------


@dataclass
class G2PModel:
    """A trained model: ``graphones[k] = (letters, phones)`` whose ARPA names are
    :func:`graphone_name`; ``lm`` a kenlm model of ``graphones.arpa``."""

    order: int
    letters: list[str]
    phones: list[str]
    graphones: list[tuple[str, tuple[str, ...]]]
    lm: object
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_letters: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for gl, ph in self.graphones:
            self.by_letters.setdefault(gl, []).append((graphone_name(gl, ph), ph))
        self.alphabet = set(self.letters)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "G2PModel":
        """Load a model folder written by :func:`train`; anything else raises
        :class:`InputError` in one line."""
        from asrkit.lm.ppl import load_kenlm

        p = Path(path)
        name = display_name(path)
        if not p.is_dir():
            raise InputError(f"{name}: no such folder" if not p.exists() else f"{name}: is not a folder (a g2p model is a folder)")
        meta = p / MODEL_JSON
        if not meta.is_file() or not (p / MODEL_ARPA).is_file():
            raise InputError(f"{name}: not a g2p model (no {MODEL_JSON} and {MODEL_ARPA}); make one with 'asrkit g2p train'")
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            if info.get("format") != FORMAT:
                raise ValueError
            if int(info["version"]) > VERSION:
                raise InputError(f"{name}: g2p model version {info['version']} is newer than this asrkit reads ({VERSION})")
            graphones = [(str(gl), tuple(str(x) for x in ph)) for gl, ph in info["graphones"]]
            model = cls(order=int(info["order"]), letters=[str(x) for x in info["letters"]],
                        phones=[str(x) for x in info["phones"]], graphones=graphones, lm=None, info=info)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InputError(f"{name}/{MODEL_JSON}: not an asrkit g2p model description") from None
        model.lm = load_kenlm(p / MODEL_ARPA)
        return model

    def pronounce(self, word: str, nbest: int = 1, beam: int = 20) -> list[tuple[tuple[str, ...], float]]:
        """The ``nbest`` best pronunciations of ``word`` with their log10 joint
        scores, best first. A word without a character the model knows raises
        :class:`DataError`; unknown characters are skipped."""
        import kenlm

        chars = [c for c in word.lower() if c in self.alphabet]
        if not chars:
            raise DataError(f"{quote(word)} has no letters the g2p model knows; cannot pronounce it")
        text = "".join(chars)
        lm = self.lm
        start = kenlm.State()
        lm.BeginSentenceWrite(start)
        n = len(text)
        # hyps[i]: (state, phones) -> (score, state); score in log10
        hyps: list[dict] = [dict() for _ in range(n + 1)]
        hyps[0][(start, ())] = (0.0, start)
        for i in range(n):
            cur = hyps[i]
            if not cur:
                continue
            items = sorted(cur.items(), key=lambda kv: -kv[1][0])[:beam]
            for k in (1, 2):
                if i + k > n:
                    continue
                cands = self.by_letters.get(text[i:i + k])
                if not cands:
                    continue
                nxt = hyps[i + k]
                for (_, phones), (score, state) in items:
                    for name, ph in cands:
                        out = kenlm.State()
                        s = score + lm.BaseScore(state, name, out)
                        key = (out, phones + ph)
                        old = nxt.get(key)
                        if old is None or s > old[0]:
                            nxt[key] = (s, out)
            hyps[i] = {}
        final: dict[tuple[str, ...], float] = {}
        for (_, phones), (score, state) in hyps[n].items():
            s = score + lm.BaseScore(state, EOS, kenlm.State())
            if phones and s > final.get(phones, -math.inf):
                final[phones] = s
        if not final:
            raise DataError(f"{quote(word)}: the g2p model has no graphones for its letters; cannot pronounce it")
        return sorted(final.items(), key=lambda kv: -kv[1])[:nbest]


def _check_pairs(pairs, what: str) -> None:
    for w, pron in pairs:
        for p in pron:
            if "}" in p or "|" in p or p == EPS:
                raise InputError(f"{what}: phone {quote(p)} of {quote(w)} cannot be a g2p phone "
                                 f"(no '}}', '|' or a lone '{EPS}')")


def train(
    lexicon,
    out: str | os.PathLike,
    order: int = 6,
    heldout: float = 10.0,
    iterations: int = 8,
    beam: int = 20,
    eval_limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Train a model on a :class:`~asrkit.data.lexicon.Lexicon`, write it to
    the folder ``out`` and, when ``heldout > 0``, score it on the held-out
    words (``eval_limit``: at most that many of them, the first in lexicon
    order). Returns the description written to ``g2p.json``."""
    import time

    from asrkit.io import prepare_output_dir
    from asrkit.lm.arpa import write_arpa
    from asrkit.lm.build import MAX_ORDER

    if not 2 <= order <= MAX_ORDER:
        raise UsageError(f"--order {order}: the graphone n-gram order must be 2 to {MAX_ORDER}")
    if not 0 <= heldout < 100:
        raise UsageError(f"--heldout {heldout}: a percentage in [0, 100)")
    if iterations < 1:
        raise UsageError(f"--iterations {iterations}: at least 1")
    pairs = lexicon_pairs(lexicon)
    if not pairs:
        raise InputError(f"{lexicon.name}: the lexicon has no pronunciations to learn from")
    _check_pairs(pairs, lexicon.name)
    train_pairs, test_pairs = split_pairs(pairs, heldout)
    if not train_pairs:
        raise InputError(f"{lexicon.name}: every word is held out; nothing left to train on (lower --heldout)")
    letters = {c: i + 1 for i, c in enumerate(sorted({c for w, _ in train_pairs for c in w}))}
    phones = {p: i + 1 for i, p in enumerate(sorted({p for _, pr in train_pairs for p in pr}))}
    t0 = time.perf_counter()
    graphones, seqs, history = align(train_pairs, letters, phones, iterations=iterations, progress=progress)
    t1 = time.perf_counter()
    dropped = sum(s is None for s in seqs)
    if dropped == len(seqs):
        raise DataError(f"{lexicon.name}: no pronunciation could be aligned to its letters (more than 2 phones a letter?)")
    used = sorted({g for s in seqs if s for g in s})
    remap = {g: k for k, g in enumerate(used)}
    graphones = [graphones[g] for g in used]
    names = [graphone_name(gl, ph) for gl, ph in graphones]
    voc = Vocabulary()
    counter = NgramCounter(order)
    for s in seqs:
        if s:
            counter.add(voc.encode([names[remap[g]] for g in s]))
    rows, counts = counter.result()
    model = estimate(rows, counts, voc.words, order)
    t2 = time.perf_counter()
    info = {
        "format": FORMAT,
        "version": VERSION,
        "order": order,
        "chunks": [list(c) for c in CHUNKS],
        "letters": sorted(letters),
        "phones": sorted(phones),
        "graphones": [[gl, list(ph)] for gl, ph in graphones],
        "training": {
            "lexicon": lexicon.name,
            "pronunciations": len(pairs),
            "train_pronunciations": len(train_pairs),
            "unaligned": dropped,
            "heldout_percent": heldout,
            "split_rule": "held out when crc32(lower-cased word utf-8) % 100 < heldout_percent",
            "em_iterations": iterations,
            "em_loglik": history,
            "ngrams": model.ngram_counts(),
        },
    }
    p = prepare_output_dir(out, "g2p train")
    write_arpa(model, p / MODEL_ARPA)
    with atomic_write(p / MODEL_JSON) as f:
        json.dump(info, f, indent=1)
    log.info(f"aligned {len(train_pairs) - dropped} pronunciations into {len(graphones)} graphones "
             f"({t1 - t0:.1f}s), {order}-gram {model.ngram_counts()} ({t2 - t1:.1f}s)")
    if test_pairs:
        g2p = G2PModel.load(p)
        t3 = time.perf_counter()
        scores = evaluate(g2p, test_pairs, beam=beam, limit=eval_limit, progress=progress)
        log.info(f"scored {scores['words']} held-out words ({time.perf_counter() - t3:.1f}s)")
        info["heldout"] = scores
        with atomic_write(p / MODEL_JSON) as f:
            json.dump(info, f, indent=1)
    return info


def evaluate(model: G2PModel, pairs: Sequence[tuple[str, tuple[str, ...]]], beam: int = 20,
             limit: int | None = None, progress: bool = False) -> dict:
    """Word error rate and phone error rate of the 1-best pronunciation on
    ``pairs`` (grouped by word: a word is right when it matches any of its
    pronunciations; its phone errors are counted against the closest one)."""
    from asrkit.score.align import align_batch, offsets_from_lengths

    refs: dict[str, list[tuple[str, ...]]] = {}
    for w, pron in pairs:
        refs.setdefault(w, []).append(pron)
    words = list(refs)
    if limit is not None:
        words = words[:limit]
    ids: dict[str, int] = {}
    hyps: list[tuple[str, ...]] = []
    skipped = 0
    with log.progress(transient=True) if progress else contextlib.nullcontext() as bar:
        task = bar.add_task("g2p held-out words", total=len(words)) if progress else None
        for w in words:
            try:
                hyps.append(model.pronounce(w, nbest=1, beam=beam)[0][0])
            except DataError:
                hyps.append(())
                skipped += 1
            if progress:
                bar.update(task, advance=1)
    # pick, per word, the reference with the fewest errors
    rr, hh, owner = [], [], []
    for k, w in enumerate(words):
        for ref in refs[w]:
            rr.append(ref)
            hh.append(hyps[k])
            owner.append(k)

    def enc(seqs):
        flat = [ids.setdefault(p, len(ids)) for s in seqs for p in s]
        return np.asarray(flat, dtype=np.int64), offsets_from_lengths(np.array([len(s) for s in seqs]))

    r_ids, r_off = enc(rr)
    h_ids, h_off = enc(hh)
    res = align_batch(r_ids, r_off, h_ids, h_off, keep_ops=False)
    errs = res.counts[:, 1:].sum(axis=1)
    reflen = np.array([len(r) for r in rr])
    best_err = np.full(len(words), np.iinfo(np.int64).max)
    best_len = np.zeros(len(words), dtype=np.int64)
    for n, k in enumerate(owner):
        if errs[n] < best_err[k] or (errs[n] == best_err[k] and reflen[n] > best_len[k]):
            best_err[k], best_len[k] = errs[n], reflen[n]
    wrong = int((best_err > 0).sum())
    return {
        "words": len(words),
        "word_errors": wrong,
        "wer": round(100.0 * wrong / len(words), 2),
        "word_accuracy": round(100.0 - 100.0 * wrong / len(words), 2),
        "phone_errors": int(best_err.sum()),
        "phones": int(best_len.sum()),
        "per": round(100.0 * float(best_err.sum()) / max(1, int(best_len.sum())), 2),
        "unpronounceable": skipped,
        "beam": beam,
    }


# -- lexicon extension ----------------------------------------------------------


def read_word_list(path: str | os.PathLike) -> list[str]:
    """The distinct tokens of a text file (one sentence a line, or one word a
    line) in order of first appearance; an ARPA file gives its unigrams.
    ``<s>``, ``</s>``, ``<unk>`` and other ``<...>`` tokens are left out."""
    from asrkit.io import iter_lines
    from asrkit.lm.arpa import read_unigrams

    name = display_name(path)
    words: list[str] = []
    arpa = False
    for _, line in iter_lines(path):  # one pass: stdin is read once
        if not words and not arpa and line.strip() == "\\data\\":
            arpa = True
            break
        words.extend(line.split())
    if arpa:
        if str(path) == "-":
            raise UsageError("an ARPA model on stdin: give it as a file (its words are read from its 1-grams)")
        words = read_unigrams(path)
    if not words:
        raise InputError(f"{name}: no words (the file is empty)")
    out = list(dict.fromkeys(w for w in words if not (w.startswith("<") and w.endswith(">"))))
    if not out:
        raise InputError(f"{name}: no words besides <...> tokens")
    return out


def pronounce_words(model: G2PModel, words: Iterable[str], nbest: int = 1, beam: int = 20) -> list[str]:
    """Kaldi lexicon lines ``word p1 p2 ...`` (``nbest`` per word, best first)."""
    lines = []
    for w in words:
        for phones, _ in model.pronounce(w, nbest=nbest, beam=beam):
            lines.append(f"{w} {' '.join(phones)}")
    return lines
