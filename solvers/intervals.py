"""Optimal acceptance from top-k log-probabilities: an interval over every consistent completion.

Serving stacks return, per position, the k most likely tokens of each model with their
log-probabilities, not the full distributions. Given the known entries of the target p (ids A) and
of the draft q (ids B), a *completion* is any pair of full distributions that agree with them: the
p tail t_p = 1 − p(A) is spread in any way over Ω \\ A, the q tail over Ω \\ B (non-negative, no
other constraint). :func:`optimal_acceptance_interval` returns [lower, upper] containing α* (or a
verifier's acceptance) of **every** completion, with a witness completion for each end.

Method
------
All ends rest on the subset dual α* = min_H [p(H) + 1 − C(H)] (SpecTr, arXiv 2310.15141; Hu et
al., arXiv 2502.18779). Tokens of N = Ω \\ (A ∪ B) are interchangeable.

* **Lower end, iid.** Moving p mass onto a token that is never drafted (q = 0) cannot raise α*
  (a verifier for the moved law, relabelled, serves the original one); moving q mass of i.i.d.
  drafts onto a token with p = 0 cannot raise it either (draw the original drafts, relabel a
  draft to the new token with the moved share: every accepted output is still drafted). Hence,
  when |N| ≥ 2, the least α* is attained by putting the whole p tail on one fresh token and the
  whole q tail on another, and it is exact. With |N| ≤ 1 (k close to V) the minimum of the
  concave α*_iid over the product of simplices is taken over its vertices (every tail on one
  token), enumerated. ``tight`` is true.
* **Upper end, iid.** α*_iid is jointly concave, and by symmetry and concavity the maximum puts
  equal ratios on the tokens of N (one tie class, equivalent to one token for i.i.d. drafts).
  The witness is the best completion of a two-parameter family (the share of each tail placed on
  N, the rest on the other side's known tokens in proportion), maximised by nested grids
  (concave in the parameters). The reported end is the certificate min over H of
  [max p(H) + 1 − min C(H)] (valid for every completion); ``tight`` is true where the witness
  reaches it (to 1e-9).
* **Without replacement.** α*_wor is not concave in q. Lower end: α*_wor ≥ α*_iid pointwise
  (C_wor(H) ≤ q(H)^n), so the iid lower end is valid; upper end: the same certificate with the
  exponential-race containment (the q tail merged into one token minimises C, Lemma A).
  Witnesses: the best candidates of the family above, the tails spread over 1, 2, n, 4n fresh
  tokens. ``tight`` only where a witness reaches the bound.
* **greedy, hub, topk and verifiers.** Witnesses as above; valid ends: verifier acceptance ≤ the
  optimum of its scheme (rrs, kseq: iid; rrs_wor: without replacement); ``sd`` equals α*_iid at
  n = 1; rrs, rrs_wor, greedy and hub drafts include one draft from q, so they accept at least
  Σ min(p, q) (iid lower end at n = 1); K-SEQ reaches (1 − (1 − 1/n)^n)·α*_iid (SpecTr). Where no
  bound is known the end is 0 or 1, ``tight`` false unless a witness reaches it.

Examples
--------
>>> import numpy as np, spectheory as st
>>> r = st.optimal_acceptance_interval([0, 1], np.log([0.5, 0.3]), [0, 2], np.log([0.6, 0.2]),
...                                   n=2, vocab_size=10)
>>> round(r.lower, 6), round(r.upper, 6), bool(r.tight)
(0.5, 1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spectheory._validation import SpecTheoryValueError, check_n

from . import _interval_witness as _w
from ._interval_input import Reduced, reduce_inputs
from ._interval_kernels import evaluate, upper_certificate

SAMPLINGS = ("iid", "without_replacement", "greedy", "hub", "topk")
#: Verifiers and the draft scheme whose interval bounds their acceptance.
VERIFIER_SCHEMES = {
    "sd": "iid",
    "rrs": "iid",
    "kseq": "iid",
    "rrs_wor": "without_replacement",
    "spechub": "hub",
    "greedy": "greedy",
}
#: Gap under which a witness is taken to attain a bound.
TIGHT_TOL = 1e-9
#: Fresh tokens a witness may use (the tails spread over up to this many tokens of N).
MAX_SPREAD = 32


@dataclass
class AcceptanceInterval:
    """Interval of acceptance over all completions of top-k information.

    Attributes
    ----------
    lower, upper : float or numpy.ndarray of shape (B,)
        Valid ends: every completion's acceptance lies in [lower, upper].
    lower_tight, upper_tight : bool or numpy.ndarray of shape (B,)
        Whether the witness attains that end (to 1e-9), i.e. the end is the exact extreme.
    lower_value, upper_value : float or numpy.ndarray
        The exact acceptance of each witness (equal to the end where tight).
    vocab_size : int
    """

    lower: object
    upper: object
    lower_tight: object
    upper_tight: object
    lower_value: object
    upper_value: object
    vocab_size: int
    _witness: dict = field(repr=False, default_factory=dict)
    _batched: bool = field(repr=False, default=False)

    @property
    def tight(self):
        """Both ends attained by their witnesses."""
        return np.logical_and(self.lower_tight, self.upper_tight)

    def witness(self, end: str, position: int = 0):
        """The full completion ``(p, q)``, arrays of shape (V,), attaining ``end`` ("lower"/"upper")."""
        if end not in ("lower", "upper"):
            raise SpecTheoryValueError(f"end: 'lower' or 'upper', got {end!r}")
        P, Q, ids = self._witness[end]
        if not 0 <= position < P.shape[0]:
            raise SpecTheoryValueError(f"position: out of range 0..{P.shape[0] - 1}")
        p = np.zeros(self.vocab_size)
        q = np.zeros(self.vocab_size)
        use = ids[position] >= 0
        np.add.at(p, ids[position][use], P[position][use])
        np.add.at(q, ids[position][use], Q[position][use])
        return p, q

    def _witnesses(self, end):
        if not self._batched:
            return self.witness(end, 0)
        pairs = [self.witness(end, b) for b in range(self._witness[end][0].shape[0])]
        return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])

    @property
    def lower_witness(self):
        """``(p, q)`` completion(s) attaining the lower end: shape (V,) each, or (B, V) for a batch."""
        return self._witnesses("lower")

    @property
    def upper_witness(self):
        """``(p, q)`` completion(s) attaining the upper end: shape (V,) each, or (B, V) for a batch."""
        return self._witnesses("upper")


def _params_upper_grid(centre_p, centre_q, half, m):
    g = np.linspace(-1.0, 1.0, 5)
    tp = np.clip(centre_p[:, None] + half * g[None, :], 0.0, 1.0)  # (B, 5)
    tq = np.clip(centre_q[:, None] + half * g[None, :], 0.0, 1.0)
    return tp, tq


def _eval_family(red, fresh, params, n, sampling, verifier):
    """Evaluate the candidate family ``params`` (C, 6) on every row: values (B, C) and the arrays."""
    P, Q, ids = _w.build(red, fresh, params)
    B, C, W = P.shape
    idsC = np.broadcast_to(ids[:, None, :], (B, C, W)).reshape(B * C, W)
    vals = evaluate(P.reshape(B * C, W), Q.reshape(B * C, W), idsC, n, sampling, verifier)
    return vals.reshape(B, C), P, Q, ids


def _pick(vals, P, Q, best, better):
    """Keep, per row, the candidate that improves on ``best`` (dict of arrays)."""
    j = np.argmax(vals, axis=1) if better == "max" else np.argmin(vals, axis=1)
    rows = np.arange(vals.shape[0])
    v = vals[rows, j]
    if best is None:
        return {"v": v, "P": P[rows, j].copy(), "Q": Q[rows, j].copy()}
    imp = v > best["v"] if better == "max" else v < best["v"]
    best["v"] = np.where(imp, v, best["v"])
    best["P"][imp] = P[rows, j][imp]
    best["Q"][imp] = Q[rows, j][imp]
    return best


def _iid_lower(red, fresh, n, sampling="iid", verifier=None):
    """Exact least α*_iid: both tails on their own fresh token (|N| >= 2), else vertex enumeration."""
    params = np.array([[1.0, 1.0, 0, 1, 1, 1]])
    vals, P, Q, ids = _eval_family(red, fresh, params, n, sampling, verifier)
    best = _pick(vals, P, Q, None, "min")
    small = np.flatnonzero(red.n_free < 2)
    for b in small:  # k close to V: enumerate the vertices (each tail on one token)
        v, Pb, Qb = _vertex_min(red, fresh, b, n, sampling, verifier)
        best["v"][b] = v
        best["P"][b] = Pb
        best["Q"][b] = Qb
    return best, ids


def _vertex_min(red, fresh, b, n, sampling, verifier):
    W = red.ids.shape[1]
    F = fresh.shape[1]
    base_p = np.concatenate([np.where(red.inA[b], red.pk[b], 0.0), np.zeros(F)])
    base_q = np.concatenate([np.where(red.inB[b], red.qk[b], 0.0), np.zeros(F)])
    slot_ok = np.concatenate([red.ids[b] >= 0, fresh[b] >= 0])
    p_targets = np.flatnonzero(slot_ok & np.concatenate([~red.inA[b], np.ones(F, bool)]))
    q_targets = np.flatnonzero(slot_ok & np.concatenate([~red.inB[b], np.ones(F, bool)]))
    if red.p_tail[b] <= 0 or p_targets.size == 0:
        p_targets = p_targets[:1] if p_targets.size else np.array([0])
    if red.q_tail[b] <= 0 or q_targets.size == 0:
        q_targets = q_targets[:1] if q_targets.size else np.array([0])
    Ps, Qs = [], []
    for i in p_targets:
        for j in q_targets:
            pp = base_p.copy()
            qq = base_q.copy()
            pp[i] += red.p_tail[b]
            qq[j] += red.q_tail[b]
            Ps.append(pp)
            Qs.append(qq)
    Ps, Qs = np.array(Ps), np.array(Qs)
    ids = np.broadcast_to(np.concatenate([red.ids[b], fresh[b]]), Ps.shape)
    vals = evaluate(Ps, Qs, ids, n, sampling, verifier)
    j = int(np.argmin(vals))
    return vals[j], Ps[j], Qs[j]


def _iid_upper_witness(red, fresh, n, sampling="iid", verifier=None, spreads=(1,), levels=4):
    """Best completion of the two-parameter family by nested 5 x 5 grids (concave for iid)."""
    B = red.batch
    best = None
    ids = None
    for m in spreads:
        cp = np.full(B, 0.5)
        cq = np.full(B, 0.5)
        half = 0.5
        for _ in range(levels):
            tp, tq = _params_upper_grid(cp, cq, half, m)
            # one family per row is not expressible with shared params: use the row-0 grid when
            # rows share a centre, else evaluate row by row in groups of equal centres
            vals_all = np.full((B, 25), -np.inf)
            keys = np.round(np.stack([cp, cq], axis=1), 12)
            uniq, inv = np.unique(keys, axis=0, return_inverse=True)
            inv = np.ravel(inv)
            cand_P = cand_Q = None
            for g in range(uniq.shape[0]):
                rows = np.flatnonzero(inv == g)
                TP, TQ = np.meshgrid(tp[rows[0]], tq[rows[0]], indexing="ij")
                params = np.stack([TP.ravel(), TQ.ravel(), np.zeros(25), np.full(25, m),
                                   np.zeros(25), np.full(25, m)], axis=1)
                sub = _sub(red, rows)
                vals, P, Q, ids_g = _eval_family(sub, fresh[rows], params, n, sampling, verifier)
                if cand_P is None:
                    cand_P = np.zeros((B,) + P.shape[1:])
                    cand_Q = np.zeros((B,) + P.shape[1:])
                    ids = np.zeros((B, P.shape[2]), dtype=np.int64)
                vals_all[rows] = vals
                cand_P[rows] = P
                cand_Q[rows] = Q
                ids[rows] = ids_g
                jbest = np.argmax(vals, axis=1)
                cp[rows] = TP.ravel()[jbest]
                cq[rows] = TQ.ravel()[jbest]
            best = _pick(vals_all, cand_P, cand_Q, best, "max")
            half /= 4.0
    return best, ids


def _sub(red: Reduced, rows) -> Reduced:
    return Reduced(red.ids[rows], red.pk[rows], red.qk[rows], red.inA[rows], red.inB[rows],
                   red.p_tail[rows], red.q_tail[rows], red.n_free[rows], red.vocab_size, True)


def _spread_candidates(n):
    sizes = sorted({1, 2, n, 4 * n} & set(range(1, MAX_SPREAD)))
    rows = []
    for m in sizes:
        rows.append([1.0, 1.0, 0, 1, 1, m])  # p tail on one fresh token, q tail spread (low end)
        rows.append([1.0, 1.0, 0, m, 1, 1])
        rows.append([0.0, 1.0, 0, 1, 0, m])
        rows.append([1.0, 0.0, 0, m, 0, 1])
    return np.array(rows, dtype=float), sizes


def _interval_rows(red, n, sampling, verifier):
    """lower, upper, witnesses, tightness for one chunk of rows."""
    F = MAX_SPREAD + 1
    fresh = _w.fresh_ids(red, F)
    scheme = VERIFIER_SCHEMES.get(verifier, sampling) if verifier not in (None, "optimal") else sampling
    iid_like = verifier is None and sampling == "iid" or verifier == "sd"
    # valid bounds
    if iid_like:
        lo_best, ids = _iid_lower(red, fresh, n)
        up_best, _ = _iid_upper_witness(red, fresh, n)
        valid_lo = lo_best["v"].copy()
        valid_up = upper_certificate(red, n, "iid")
    else:
        spread_params, sizes = _spread_candidates(n)
        vals, P, Q, ids = _eval_family(red, fresh, spread_params, n, sampling, verifier)
        lo_best = _pick(vals, P, Q, None, "min")
        up_best = _pick(vals, P, Q, None, "max")
        lb, ids0 = _iid_lower(red, fresh, n, sampling, verifier)
        lo_best = _merge(lo_best, lb, "min")
        ub, _ = _iid_upper_witness(red, fresh, n, sampling, verifier, spreads=sizes[:2], levels=3)
        up_best = _merge(up_best, ub, "max")
        up_best = _merge(up_best, _pick(vals, P, Q, None, "max"), "max")
        lo_best = _merge(lo_best, _pick(vals, P, Q, None, "min"), "min")
        valid_lo, valid_up = _valid_ends(red, fresh, n, scheme, verifier)
    lower = np.minimum(valid_lo, lo_best["v"])
    upper = np.maximum(valid_up, up_best["v"])
    # both tails empty: the completion is unique and every witness is it
    unique = (red.p_tail <= 0) & (red.q_tail <= 0)
    lower = np.where(unique, lo_best["v"], lower)
    upper = np.where(unique, up_best["v"], upper)
    lower_tight = lo_best["v"] - lower <= TIGHT_TOL
    upper_tight = upper - up_best["v"] <= TIGHT_TOL
    lower = np.where(lower_tight, lo_best["v"], lower)
    upper = np.where(upper_tight, up_best["v"], upper)
    return dict(lower=np.clip(lower, 0, 1), upper=np.clip(upper, 0, 1), lower_tight=lower_tight,
                upper_tight=upper_tight, lower_value=lo_best["v"], upper_value=up_best["v"],
                lw=(lo_best["P"], lo_best["Q"], ids), uw=(up_best["P"], up_best["Q"], ids))


def _merge(a, b, better):
    imp = b["v"] > a["v"] if better == "max" else b["v"] < a["v"]
    a["v"] = np.where(imp, b["v"], a["v"])
    a["P"][imp] = b["P"][imp]
    a["Q"][imp] = b["Q"][imp]
    return a


def _valid_ends(red, fresh, n, scheme, verifier):
    """Valid (not necessarily attained) ends for schemes and verifiers other than iid."""
    B = red.batch
    lo1, _ = _iid_lower(red, fresh, 1)
    lo1 = lo1["v"]
    lo = np.zeros(B)
    up = np.ones(B)
    if verifier in (None, "optimal", "greedy") and scheme == "without_replacement":
        lo_n, _ = _iid_lower(red, fresh, n)
        lo = lo_n["v"]
        up = upper_certificate(red, n, "without_replacement")
    elif verifier in (None, "optimal", "greedy") and scheme in ("greedy", "hub"):
        lo = lo1
    elif verifier in ("optimal",) and scheme == "iid":
        lo_n, _ = _iid_lower(red, fresh, n)
        lo = lo_n["v"]
        up = upper_certificate(red, n, "iid")
    elif verifier == "rrs":
        lo = lo1
        up = upper_certificate(red, n, "iid")
    elif verifier == "kseq":
        lo_n, _ = _iid_lower(red, fresh, n)
        lo = (1.0 - (1.0 - 1.0 / n) ** n) * lo_n["v"] if n > 1 else lo_n["v"]
        up = upper_certificate(red, n, "iid")
    elif verifier == "rrs_wor":
        lo = lo1
        up = upper_certificate(red, n, "without_replacement")
    return lo, up


#: Positions per chunk (bounds the candidate arrays' memory).
CHUNK = 64


def optimal_acceptance_interval(p_ids, p_logprobs, q_ids, q_logprobs, n, sampling: str = "iid", *,
                                vocab_size=None, p_tail=None, q_tail=None, verifier=None):
    """Interval of the optimal acceptance α* (or of a verifier's acceptance) from top-k log-probs.

    Every pair of full distributions (p, q) that agrees with the known entries (a *completion*: the
    tail masses spread arbitrarily over the unknown tokens) has its acceptance in
    [``lower``, ``upper``]. Each end has a witness completion; ``tight`` says whether the witness
    attains the end exactly. Method: the subset dual (SpecTr, arXiv 2310.15141), joint concavity of
    α*_iid for the upper end, extreme completions for the lower end (see
    :mod:`spectheory.solvers.intervals` for the proofs and for what is certified per scheme).

    Parameters
    ----------
    p_ids, p_logprobs : array_like, shape (k_p,) or (B, k_p)
        Known target entries per position: token ids and natural-log probabilities. Ids < 0 are
        padding (ignored), so positions may know different numbers of tokens.
    q_ids, q_logprobs : array_like, shape (k_q,) or (B, k_q)
        Known draft entries; the sets of ids may differ from the target's.
    n : int >= 1
        Number of drafts.
    sampling : {"iid", "without_replacement", "greedy", "hub", "topk"}
        Draft scheme of α* (ignored when ``verifier`` names a verifier with its own scheme).
    vocab_size : int
        V, the size of the shared vocabulary (required).
    p_tail, q_tail : float or array_like of shape (B,), optional
        The mass outside the known entries (default 1 − known mass). When given, known mass plus
        tail must be 1 within ``SUM_RTOL``; the known entries are rescaled to sum to 1 − tail.
    verifier : str, optional
        "sd", "rrs", "kseq", "rrs_wor", "spechub", "greedy" or "optimal": the interval of that
        verifier's exact acceptance (``"optimal"``: α* of ``sampling``).

    Returns
    -------
    AcceptanceInterval
        ``.lower``, ``.upper``, ``.lower_tight``, ``.upper_tight``, ``.tight``,
        ``.lower_witness``, ``.upper_witness`` (``(p, q)`` full arrays), floats for one position,
        arrays of shape (B,) for a batch.

    Raises
    ------
    ValueError
        Log-probs above 0, known mass above 1, duplicate ids, ids ≥ V, k = 0, different numbers
        of positions for the two models, unknown scheme or verifier.

    Examples
    --------
    >>> import numpy as np, spectheory as st
    >>> r = st.optimal_acceptance_interval([0, 1], np.log([0.6, 0.4]), [0, 1], np.log([0.6, 0.4]),
    ...                                   n=1, vocab_size=4)
    >>> (r.lower, r.upper)            # everything is known: the interval is the exact value
    (1.0, 1.0)
    """
    n = check_n(n)
    if verifier is not None:
        if verifier not in (*VERIFIER_SCHEMES, "optimal"):
            raise SpecTheoryValueError(
                f"verifier: unknown verifier {verifier!r}; choose one of {', '.join((*VERIFIER_SCHEMES, 'optimal'))}"
            )
        if verifier == "sd" and n != 1:
            raise SpecTheoryValueError(f"n: verifier 'sd' takes one draft, got n = {n}")
        if verifier == "spechub" and n != 2:
            raise SpecTheoryValueError(f"n: verifier 'spechub' takes n = 2, got n = {n}")
    if sampling not in SAMPLINGS:
        raise SpecTheoryValueError(f"sampling: unknown draft scheme {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
    if sampling == "hub" and n != 2 and verifier is None:
        raise SpecTheoryValueError(f"n: sampling 'hub' takes n = 2, got n = {n}")
    if verifier not in (None, "optimal"):
        sampling = VERIFIER_SCHEMES[verifier]
        if verifier == "greedy":
            verifier = None  # the greedy verifier attains α*_greedy (closed form)
    elif verifier == "optimal":
        verifier = None
    red = reduce_inputs(p_ids, p_logprobs, q_ids, q_logprobs, vocab_size, p_tail, q_tail)
    parts = [_interval_rows(_sub(red, np.arange(s, min(s + CHUNK, red.batch))), n, sampling, verifier)
             for s in range(0, red.batch, CHUNK)]
    cat = {k: np.concatenate([d[k] for d in parts]) for k in parts[0] if k not in ("lw", "uw")}
    wit = {}
    for end, key in (("lower", "lw"), ("upper", "uw")):
        width = max(d[key][0].shape[1] for d in parts)
        arrs = []
        for i in range(3):
            fill = -1 if i == 2 else 0.0
            arrs.append(np.concatenate([np.pad(d[key][i], ((0, 0), (0, width - d[key][i].shape[1])),
                                               constant_values=fill) for d in parts]))
        wit[end] = tuple(arrs)
    out = {k: (v if red.batched else (float(v[0]) if v.dtype.kind == "f" else bool(v[0]))) for k, v in cat.items()}
    return AcceptanceInterval(vocab_size=red.vocab_size, _witness=wit, _batched=red.batched, **out)
