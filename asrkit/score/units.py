"""A guard against scoring one kind of unit against another.

``asrkit decode exp/ctc feats/test | asrkit score data/test/text -`` with a
phone model compares ARPAbet phones with words and prints a WER far over 100
without complaint. :func:`unit_mismatch` looks at the tokens of both sides and
says so when they look like different kinds of unit: phones vs words,
characters vs words, or two vocabularies that barely meet with very different
lengths.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

# ARPAbet (CMUdict, TIMIT-folded), stress digits stripped, and the usual silences.
PHONES = frozenset(
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh "
    "sil sp spn".split()
)
_STRESS = re.compile(r"[012]$")
MIN_TOKENS = 20  # below this many tokens a side is not judged


def _share(tokens: Counter, pred) -> float:
    total = sum(tokens.values())
    return sum(c for t, c in tokens.items() if pred(t)) / total if total else 0.0


def _is_phone(tok: str) -> bool:
    return _STRESS.sub("", tok.lower()) in PHONES


def _kind(tokens: Counter) -> tuple[str, float] | None:
    """``("phones", share)`` / ``("characters", share)`` when 90% of the tokens are such."""
    p = _share(tokens, _is_phone)
    if p >= 0.9:
        return "phones", p
    c = _share(tokens, lambda t: len(t) == 1)
    if c >= 0.9:
        return "characters", c
    return None


def unit_mismatch(
    refs: Iterable[Sequence[str]], hyps: Iterable[Sequence[str]], ref_name: str = "reference",
    hyp_name: str = "hypothesis",
) -> str | None:
    """One line describing why ``hyps`` and ``refs`` look like different units, or None."""
    r = Counter(t for s in refs for t in s)
    h = Counter(t for s in hyps for t in s)
    nr, nh = sum(r.values()), sum(h.values())
    if nr < MIN_TOKENS or nh < MIN_TOKENS:
        return None
    kr, kh = _kind(r), _kind(h)
    if (kr is None) != (kh is None) or (kr and kh and kr[0] != kh[0]):
        def say(name, k, counter):
            if k is not None:
                return f"{name} looks like {k[0]} ({100 * k[1]:.0f}% of its tokens)"
            return f"{name} like words ({100 * _share(counter, _is_phone):.0f}% phones)"

        return (f"{say(hyp_name, kh, h)} but {say(ref_name, kr, r)}: the error rate compares different units; "
                "score against references in the units of the hypotheses (e.g. the phones of a phone model)")
    overlap = _share(h, lambda t: t in r)
    ratio = nh / nr
    if overlap < 0.1 and (ratio > 2 or ratio < 0.5):
        return (f"{hyp_name} and {ref_name} barely share a vocabulary ({100 * overlap:.0f}% of hypothesis tokens "
                f"occur in the reference) and differ in length {nh} vs {nr} tokens: are they the same kind of unit?")
    return None
