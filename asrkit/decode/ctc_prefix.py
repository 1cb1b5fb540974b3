"""CTC prefix scores for a label-synchronous search (joint CTC/attention decoding).

The attention decoder proposes one label at a time; the CTC head says how
likely each proposed prefix is over the whole utterance (Watanabe et al.,
"Hybrid CTC/attention architecture", 2017; ESPnet's ``CTCPrefixScoreTH``).
For a hypothesis ``g`` (labels without ``<sos>``) the forward variables over
frames ``t`` are

- ``r_t^n(g)``: log probability of the paths over frames ``0..t`` that spell
  ``g`` and end in its last label,
- ``r_t^b(g)``: the same paths ending in blank,

and the prefix probability of ``h = g + c`` (any labelling that starts with
``h``) is::

    phi_t(g, c) = r_t^b(g) (+) r_t^n(g)      if c != last(g), else r_t^b(g)
    psi(h)      = r_0^n(h) (+) sum_{t>=1} phi_{t-1}(g, c) + x_t(c)
    r_t^n(h)    = (r_{t-1}^n(h) (+) phi_{t-1}(g, c)) + x_t(c)
    r_t^b(h)    = (r_{t-1}^b(h) (+) r_{t-1}^n(h)) + x_t(blank)

(``(+)`` is log-add, ``x_t`` the CTC log-probabilities; ``r_0^n(h) = x_0(c)``
when ``g`` is empty, else impossible). ``<eos>`` after ``g`` scores the
probability of exactly ``g``: ``r_{T-1}^n(g) (+) r_{T-1}^b(g)``.

Everything is vectorized over hypotheses x candidate labels. Over frames,
both recurrences are first-order linear recurrences in probability space,
``r_t = (r_{t-1} + u_{t-1}) * a_t``: up to ``_CLOSED_FORM_MAX`` values they
are solved at once with a cumulative sum and ``logcumsumexp`` (:func:`_forward`,
in float64; 50x faster than the frame loop for one hypothesis over 1500
frames), above it frame by frame (torch's CPU cumsum over the first dimension
of a large tensor is slower than the loop: 7x at 1800 frames x 2400 candidates). Utterances of one batch have different lengths: frames past
an utterance's end get log-probability 0 for the blank and -inf for every
label, so the variables carry through them unchanged and the last padded
frame holds each utterance's own end.

    scorer = CTCPrefixScorer(ctc_log_probs (B, T, C), lengths (B,))
    state = scorer.initial(rows)                    # rows (N,): the utterance of each hypothesis
    log_psi, r = scorer.score(state, cands)         # cands (N, K) -> (N, K) log prefix probabilities
    state = scorer.select(state, r, log_psi, parents, k, tokens)   # the hypotheses kept, one label longer

The search adds ``ctc_weight * log_psi`` of a hypothesis to its score (ESPnet
adds the increments ``log_psi(h) - log_psi(g)`` step by step: the same sum).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["CTCPrefixScorer", "CTCPrefixState"]

_NINF = float("-inf")
#: frames x hypotheses x candidates up to which the recurrences are solved in closed form (see above)
_CLOSED_FORM_MAX = 1_000_000


class CTCPrefixState(NamedTuple):
    """The CTC side of ``N`` hypotheses of equal length.

    Attributes:
        r: ``(T, 2, N)`` log forward variables: ``[:, 0]`` paths ending in the
            last label (``r^n``), ``[:, 1]`` in blank (``r^b``).
        log_psi: ``(N,)`` log prefix probability of each hypothesis.
        last: ``(N,)`` last label of each hypothesis (-1 when empty).
        rows: ``(N,)`` the utterance (batch row of the log-probabilities) of each hypothesis.
        length: labels in every hypothesis.
    """

    r: Tensor
    log_psi: Tensor
    last: Tensor
    rows: Tensor
    length: int


class CTCPrefixScorer:
    """Prefix scores of a batch of utterances' CTC log-probabilities.

    Args:
        log_probs: ``(B, T, C)`` CTC log-probabilities (log-softmax), padded.
        lengths: ``(B,)`` valid frames of each utterance.
        blank: the CTC blank id.
        eos: the end-of-sentence id of the search (may equal ``blank``: the
            attention models share id 0); a candidate ``eos`` scores the
            probability of the hypothesis as a whole.
    """

    def __init__(self, log_probs: Tensor, lengths: Tensor, blank: int = 0, eos: int = 0):
        B, T, C = log_probs.shape
        self.blank, self.eos = int(blank), int(eos)
        self.T, self.C = int(T), int(C)
        x = log_probs.detach().transpose(0, 1).clone()  # (T, B, C)
        lengths = lengths.to(x.device)
        pad = torch.arange(T, device=x.device)[:, None] >= lengths[None, :]  # (T, B) frames past the end
        x.masked_fill_(pad[:, :, None], _NINF)
        x[:, :, self.blank].masked_fill_(pad, 0.0)
        self.x = x  # (T, B, C)

    @property
    def device(self) -> torch.device:
        return self.x.device

    def initial(self, rows: Tensor) -> CTCPrefixState:
        """The state of ``N`` empty hypotheses, hypothesis ``n`` on utterance ``rows[n]``."""
        rows = rows.to(self.device)
        N = int(rows.shape[0])
        r = torch.full((self.T, 2, N), _NINF, dtype=self.x.dtype, device=self.device)
        r[:, 1] = torch.cumsum(self.x[:, rows, self.blank], dim=0)  # (T, N) all blanks
        return CTCPrefixState(r, torch.zeros(N, dtype=self.x.dtype, device=self.device),
                              torch.full((N,), -1, dtype=torch.int64, device=self.device), rows, 0)

    def score(self, state: CTCPrefixState, cands: Tensor) -> tuple[Tensor, Tensor]:
        """Log prefix probabilities of every hypothesis extended by each of its candidates.

        Args:
            state: ``N`` hypotheses.
            cands: ``(N, K)`` candidate labels per hypothesis (``eos`` allowed).

        Returns:
            ``log_psi (N, K)`` and the forward variables of the extensions
            ``r (T, 2, N, K)`` (for :meth:`select`).
        """
        cands = cands.to(self.device)
        N, K = cands.shape
        T = self.T
        rows = state.rows
        x_c = self.x[:, rows[:, None].expand(N, K), cands]  # (T, N, K)
        x_b = self.x[:, rows, self.blank][:, :, None]  # (T, N, 1)
        r_n, r_b = state.r[:, 0, :, None], state.r[:, 1, :, None]  # (T, N, 1)
        same = (cands == state.last[:, None])[None]  # (1, N, K): a repeat needs a blank between
        phi = torch.where(same, r_b, torch.logaddexp(r_n, r_b))  # (T, N, K)
        L = state.length
        start = max(L, 1)  # L labels need L frames: r^n, r^b of g are impossible before frame L - 1
        r = torch.full((T, 2, N, K), _NINF, dtype=self.x.dtype, device=self.device)
        if start <= T:
            if L == 0:
                r[0, 0] = x_c[0]
            if (T - start) * N * K <= _CLOSED_FORM_MAX:
                r[start - 1:, 0], r[start - 1:, 1] = _forward(r[start - 1, 0], phi[start - 1:T - 1], x_c[start:],
                                                              x_b[start:])
            else:
                for t in range(start, T):
                    r[t, 0] = torch.logaddexp(r[t - 1, 0], phi[t - 1]) + x_c[t]
                    r[t, 1] = torch.logaddexp(r[t - 1, 0], r[t - 1, 1]) + x_b[t]
        terms = phi[start - 1:T - 1] + x_c[start:T]  # (T - start, N, K)
        if L == 0:
            terms = torch.cat([r[0, 0][None], terms], dim=0)
        log_psi = torch.logsumexp(terms, dim=0) if terms.shape[0] else torch.full((N, K), _NINF, dtype=self.x.dtype,
                                                                                     device=self.device)
        full = torch.logaddexp(state.r[T - 1, 0], state.r[T - 1, 1])  # (N,) probability of exactly g
        log_psi = torch.where(cands == self.eos, full[:, None], log_psi)
        return log_psi, r

    def select(self, state: CTCPrefixState, r: Tensor, log_psi: Tensor, parents: Tensor, k: Tensor,
               tokens: Tensor) -> CTCPrefixState:
        """The state of the hypotheses kept: hypothesis ``parents[j]`` extended by its
        candidate ``k[j]`` (label ``tokens[j]``, not ``eos``), from :meth:`score`'s ``r`` and ``log_psi``."""
        parents, k, tokens = parents.to(self.device), k.to(self.device), tokens.to(self.device)
        return CTCPrefixState(r[:, :, parents, k], log_psi[parents, k], tokens, state.rows[parents],
                              state.length + 1)


def _linear_recurrence(init: Tensor, inputs: Tensor, a: Tensor) -> Tensor:
    """``y_0 = init``, ``y_t = logaddexp(y_{t-1}, inputs_{t-1}) + a_t`` (t = 1..n) for all ``t`` at once.

    ``init (...)``, ``inputs (n, ...)``, ``a (n, ...)`` -> ``y (n + 1, ...)``. With ``A_t = a_1 + .. + a_t``:
    ``y_t = A_t + log(exp(init) + sum_{s <= t} exp(inputs_{s-1} - A_{s-1}))``. ``a`` must be finite
    (the caller floors ``-inf`` and masks those steps afterwards); float64 keeps the differences exact
    enough over thousands of frames.
    """
    A = torch.cat([torch.zeros_like(init)[None], torch.cumsum(a, dim=0)], dim=0)  # (n + 1, ...) A_0 = 0 .. A_n
    e = torch.cat([init[None], inputs - A[:-1]], dim=0)  # (n + 1, ...)
    return A + torch.logcumsumexp(e, dim=0)


def _forward(init_n: Tensor, phi: Tensor, x_c: Tensor, x_b: Tensor) -> tuple[Tensor, Tensor]:
    """The forward variables ``r^n, r^b`` of the extensions from frame ``start - 1`` on.

    ``init_n (N, K)``: ``r^n`` at frame ``start - 1`` (``r^b`` there is impossible); ``phi (n, N, K)``
    at frames ``start - 1 .. T - 2``; ``x_c (n, N, K)``, ``x_b (n, N, 1)`` at frames ``start .. T - 1``.
    Returns ``(r^n, r^b)``, each ``(n + 1, N, K)`` in the input dtype.
    """
    dtype = x_c.dtype
    floor = -1e4  # a stand-in for -inf in the cumulative sums: exp(-1e4) is 0 in float64
    xc, xb = x_c.double(), x_b.double().expand_as(x_c)
    dead_c, dead_b = torch.isneginf(xc), torch.isneginf(xb)
    r_n = _linear_recurrence(init_n.double(), phi.double(), xc.clamp_min(floor))
    r_n[1:].masked_fill_(dead_c, _NINF)  # r^n_t = (...) + x_t(c): impossible where x_t(c) is
    r_b = _linear_recurrence(torch.full_like(r_n[0], _NINF), r_n[:-1], xb.clamp_min(floor))
    r_b[1:].masked_fill_(dead_b, _NINF)
    return r_n.to(dtype), r_b.to(dtype)
