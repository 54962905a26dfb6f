"""Draft sampling schemes: how the n drafts are drawn from the draft distribution q.

A scheme fixes the joint law Q of the draft tuple X = (X_1, ..., X_n) on Ω^n (REFERENCE §2). Each
scheme here can

* ``sample(q, n, rng)``: draw one tuple from a seeded :class:`numpy.random.Generator`;
* ``tuple_law(q, n)``: enumerate its exact law (ordered tuples and their probabilities), small V only;
* ``containment(q, n, H)``: C(H) = Q(every X_i ∈ H), exactly.

Schemes
-------
``iid``
    X_i i.i.d. from q (with replacement). C(H) = q(H)^n.
``without_replacement``
    Successive sampling: X_{i+1} from q restricted to the tokens not yet drawn, renormalised
    (equivalently Gumbel-top-n). C(H) is the exponential-race integral of REFERENCE §2; exact
    enumeration here, the fast quadrature lives in :mod:`spectheory.solvers.exponential_race`.
``greedy``
    Hu et al. (arXiv 2502.18779): the n-1 most likely tokens T of q are drafted deterministically
    (ties broken towards the lower index), the last draft is sampled from q restricted to Ω \\ T and
    renormalised (q'). C(H) = [T ⊆ H] · q'(H).
``topk``
    Deterministic top-n drafting (EAGLE-2/3, SGLang and vLLM argmax drafting): the drafts are the
    n most likely tokens T of q (ties broken towards the lower index), with probability 1.
    C(H) = [T ⊆ H], so the optimal acceptance is p(T), attained by target-only verification.
``hub``
    SpecHub (arXiv 2411.05289), n = 2, hub a = argmax q (lowest index on ties): X_1 ~ q; if X_1 ≠ a
    then X_2 = a, else X_2 ~ q without a. C(H) = [a ∈ H] · q(H \\ {a}) / (1 - q(a)).
``independent``
    n different drafters, X_i ~ q_i independently; q has shape (n, V). C(H) = Π_i q_i(H).

Draft counts beyond the support
-------------------------------
Schemes that draw distinct tokens (``without_replacement``, ``greedy``, ``hub``) cannot draw more
distinct tokens than q puts mass on. With m = |supp q| they draw ``min(n, m)`` drafts: once the
support is exhausted there is nothing left to draft (and at m = 1 every scheme drafts the single
token). :meth:`DraftScheme.effective_n` gives that number; every bound in the package uses it, so
``n`` larger than the support (or than V) is allowed and means "the whole support is drafted".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ._validation import SpecTheoryValueError, check_distribution, check_n

#: Largest number of tuples :meth:`DraftScheme.tuple_law` will enumerate.
MAX_TUPLES = 2_000_000


@dataclass(frozen=True)
class TupleLaw:
    """The exact law of a draft scheme: ``probs[t]`` is the probability of the ordered tuple
    ``tuples[t]`` (an int array of token ids, shape (T, n_eff)). Only tuples of positive
    probability are listed; ``probs`` sums to 1 up to rounding."""

    tuples: np.ndarray
    probs: np.ndarray


def _as_mask(H, V: int) -> np.ndarray:
    h = np.asarray(H)
    if h.dtype == bool:
        if h.shape != (V,):
            raise SpecTheoryValueError(f"H: boolean mask must have shape ({V},), got {h.shape}")
        return h
    idx = np.asarray(h, dtype=np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        raise SpecTheoryValueError(f"H: token ids must lie in [0, {V}), got {idx.min()}..{idx.max()}")
    mask = np.zeros(V, dtype=bool)
    mask[idx] = True
    return mask


def _check_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise SpecTheoryValueError(f"rng: expected a numpy Generator or an integer seed, got {type(rng).__name__}")


def _count_guard(count: float, what: str) -> None:
    if count > MAX_TUPLES:
        raise SpecTheoryValueError(
            f"{what}: the exact tuple law has {count:.3g} tuples (limit {MAX_TUPLES:,}); "
            "use the subset dual (st.optimal_acceptance(..., method='dual')) for large V"
        )


class DraftScheme:
    """Base class. Subclasses set ``name`` and implement the three methods."""

    name: str = ""
    #: whether the drafts are distinct tokens (so at most |supp q| of them)
    distinct: bool = False

    def __repr__(self) -> str:
        return f"<draft scheme {self.name!r}>"

    def check_q(self, q) -> np.ndarray:
        return check_distribution(q, "q", allow_batch=False)

    def effective_n(self, q: np.ndarray, n: int) -> int:
        """Number of drafts actually drawn: ``n``, or ``min(n, |supp q|)`` for distinct schemes."""
        n = check_n(n)
        if self.distinct:
            return min(n, int(np.count_nonzero(q > 0)))
        return n

    def sample(self, q, n: int, rng) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def tuple_law(self, q, n: int) -> TupleLaw:  # pragma: no cover - abstract
        raise NotImplementedError

    def tuple_possible(self, q, drafts) -> bool:
        """Whether the scheme can draw this ordered tuple (its probability is positive, even where
        :meth:`tuple_probability` underflows to 0 in float64)."""
        return self.tuple_probability(q, drafts) > 0

    def tuple_probability(self, q, drafts) -> float:  # pragma: no cover - abstract
        """Q(drafts): the probability that the scheme draws exactly this ordered tuple (0 for a tuple
        the scheme cannot produce). ``len(drafts)`` is the number of drafts drawn."""
        raise NotImplementedError

    def containment(self, q, n: int, H) -> float:
        """C(H) = Q(all drafts in H), by summing the exact tuple law (subclasses override with
        closed forms)."""
        q = self.check_q(q)
        mask = _as_mask(H, q.shape[-1])
        law = self.tuple_law(q, n)
        inside = np.all(mask[law.tuples], axis=1)
        return float(law.probs[inside].sum())


class IID(DraftScheme):
    name = "iid"

    def sample(self, q, n, rng):
        q = self.check_q(q)
        n = check_n(n)
        return _check_rng(rng).choice(q.shape[0], size=n, p=q)

    def tuple_law(self, q, n):
        q = self.check_q(q)
        n = check_n(n)
        support = np.flatnonzero(q > 0)
        _count_guard(float(len(support)) ** n, "iid")
        tuples = np.array(list(itertools.product(support, repeat=n)), dtype=np.int64).reshape(-1, n)
        probs = np.prod(q[tuples], axis=1)
        return TupleLaw(tuples, probs)

    def tuple_probability(self, q, drafts):
        return float(np.prod(q[drafts]))

    def tuple_possible(self, q, drafts):
        return bool(np.all(q[drafts] > 0))

    def containment(self, q, n, H):
        q = self.check_q(q)
        return float(q[_as_mask(H, q.shape[0])].sum() ** check_n(n))


class WithoutReplacement(DraftScheme):
    name = "without_replacement"
    distinct = True

    def sample(self, q, n, rng):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        # Gumbel-top-k: the order of the k largest perturbed log-probabilities is the order of
        # successive sampling without replacement.
        with np.errstate(divide="ignore"):
            keys = np.log(q) + _check_rng(rng).gumbel(size=q.shape[0])
        top = np.argpartition(-keys, k - 1)[:k] if k < q.shape[0] else np.arange(q.shape[0])
        return top[np.argsort(-keys[top], kind="stable")][:k]

    def tuple_law(self, q, n):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        support = np.flatnonzero(q > 0)
        m = len(support)
        count = 1.0
        for i in range(k):
            count *= m - i
        _count_guard(count, "without_replacement")
        tuples = np.array(list(itertools.permutations(support, k)), dtype=np.int64).reshape(-1, k)
        probs = np.empty(len(tuples))
        pos = np.searchsorted(support, tuples)  # column of each draft within the support
        for start in range(0, len(tuples), 65536):
            chunk = slice(start, start + 65536)
            # the remaining mass is summed afresh, not taken as 1 - (drafted mass): no cancellation
            # when one draft carries almost all of q's mass
            remaining = np.tile(q[support], (len(pos[chunk]), 1))
            rows = np.arange(len(pos[chunk]))
            pr = np.ones(len(rows))
            for i in range(k):
                pr *= remaining[rows, pos[chunk, i]] / remaining.sum(axis=1)
                remaining[rows, pos[chunk, i]] = 0.0
            probs[chunk] = pr
        return TupleLaw(tuples, probs)

    def tuple_possible(self, q, drafts):
        return bool(
            np.all(q[drafts] > 0) and len(set(drafts.tolist())) == len(drafts) and len(drafts) <= np.count_nonzero(q > 0)
        )

    def tuple_probability(self, q, drafts):
        if len(set(drafts.tolist())) < len(drafts) or len(drafts) > np.count_nonzero(q > 0):
            return 0.0
        remaining = q.copy()
        prob = 1.0
        for x in drafts:
            prob *= remaining[x] / remaining.sum()
            remaining[x] = 0.0
        return float(prob)


class Greedy(DraftScheme):
    name = "greedy"
    distinct = True

    @staticmethod
    def deterministic_part(q: np.ndarray, k: int) -> np.ndarray:
        """The k - 1 deterministic drafts: the most likely tokens of q, lower index first on ties.

        Equal to ``np.argsort(-q, kind="stable")[:k - 1]``, in O(V + k log k): a partition finds the
        (k−1)-th largest mass t, every token above t is taken and the lowest-index tokens at t fill
        the rest."""
        m = k - 1
        if m <= 0:
            return np.zeros(0, dtype=np.int64)
        if m >= q.shape[0] // 4:
            return np.argsort(-q, kind="stable")[:m]
        t = np.partition(q, q.shape[0] - m)[q.shape[0] - m]
        above = np.flatnonzero(q > t)
        cand = np.concatenate([above, np.flatnonzero(q == t)[: m - len(above)]])
        cand.sort()
        return cand[np.argsort(-q[cand], kind="stable")]

    def _split(self, q, n):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        top = self.deterministic_part(q, k)
        rest = q.copy()
        rest[top] = 0.0
        return q, k, top, rest / rest.sum()

    def sample(self, q, n, rng):
        q, k, top, q_rest = self._split(q, n)
        last = _check_rng(rng).choice(q.shape[0], p=q_rest)
        return np.concatenate([top, [last]]).astype(np.int64)

    def tuple_law(self, q, n):
        q, k, top, q_rest = self._split(q, n)
        last = np.flatnonzero(q_rest > 0)
        tuples = np.concatenate([np.tile(top, (len(last), 1)), last[:, None]], axis=1).astype(np.int64)
        return TupleLaw(tuples, q_rest[last])

    def tuple_probability(self, q, drafts):
        q, k, top, q_rest = self._split(q, len(drafts))
        if k != len(drafts) or not np.array_equal(drafts[:-1], top):
            return 0.0
        return float(q_rest[drafts[-1]])

    def containment(self, q, n, H):
        q, k, top, q_rest = self._split(q, n)
        mask = _as_mask(H, q.shape[0])
        if not np.all(mask[top]):
            return 0.0
        return float(q_rest[mask].sum())


class TopK(DraftScheme):
    name = "topk"
    distinct = True

    @staticmethod
    def drafted(q: np.ndarray, k: int) -> np.ndarray:
        """The k drafted tokens: the most likely tokens of q, lower index first on ties."""
        return np.argsort(-q, kind="stable")[:k].astype(np.int64)

    def sample(self, q, n, rng):
        q = self.check_q(q)
        _check_rng(rng)
        return self.drafted(q, self.effective_n(q, n))

    def tuple_law(self, q, n):
        q = self.check_q(q)
        return TupleLaw(self.drafted(q, self.effective_n(q, n))[None, :], np.ones(1))

    def tuple_probability(self, q, drafts):
        q = self.check_q(q)
        drafts = np.asarray(drafts, dtype=np.int64)
        k = self.effective_n(q, len(drafts))
        return float(k == len(drafts) and np.array_equal(drafts, self.drafted(q, k)))

    def containment(self, q, n, H):
        q = self.check_q(q)
        mask = _as_mask(H, q.shape[0])
        return float(np.all(mask[self.drafted(q, self.effective_n(q, n))]))


class Hub(DraftScheme):
    name = "hub"
    distinct = True

    def effective_n(self, q, n):
        n = check_n(n)
        if n != 2:
            raise SpecTheoryValueError(f"n: sampling='hub' (SpecHub) is defined for n = 2 only, got n = {n}")
        return min(2, int(np.count_nonzero(q > 0)))

    @staticmethod
    def hub(q: np.ndarray) -> int:
        return int(np.argmax(q))

    def sample(self, q, n, rng):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        a = self.hub(q)
        if k == 1:
            return np.array([a], dtype=np.int64)
        rng = _check_rng(rng)
        x1 = int(rng.choice(q.shape[0], p=q))
        if x1 != a:
            return np.array([x1, a], dtype=np.int64)
        rest = q.copy()
        rest[a] = 0.0
        return np.array([a, rng.choice(q.shape[0], p=rest / rest.sum())], dtype=np.int64)

    def tuple_law(self, q, n):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        a = self.hub(q)
        if k == 1:
            return TupleLaw(np.array([[a]], dtype=np.int64), np.ones(1))
        others = np.flatnonzero(q > 0)
        others = others[others != a]
        rest_mass = q[others].sum()  # not 1 - q(a): no cancellation when q(a) is close to 1
        tuples = np.concatenate(
            [np.stack([others, np.full_like(others, a)], 1), np.stack([np.full_like(others, a), others], 1)]
        ).astype(np.int64)
        probs = np.concatenate([q[others], q[a] * q[others] / rest_mass])
        return TupleLaw(tuples, probs)

    def tuple_possible(self, q, drafts):
        a = self.hub(q)
        support = int(np.count_nonzero(q > 0))
        if len(drafts) == 1:
            return support == 1 and int(drafts[0]) == a
        if len(drafts) != 2 or support < 2:
            return False
        x1, x2 = int(drafts[0]), int(drafts[1])
        return (x1 != a and x2 == a and q[x1] > 0) or (x1 == a and x2 != a and q[x2] > 0)

    def tuple_probability(self, q, drafts):
        a = self.hub(q)
        if len(drafts) == 1:
            return 1.0 if np.count_nonzero(q > 0) == 1 and drafts[0] == a else 0.0
        if len(drafts) != 2 or np.count_nonzero(q > 0) < 2:
            return 0.0
        x1, x2 = int(drafts[0]), int(drafts[1])
        rest_mass = q.sum() - q[a] if q[a] < 0.5 else np.delete(q, a).sum()
        if x1 != a and x2 == a:
            return float(q[x1])
        if x1 == a and x2 != a:
            return float(q[a] * q[x2] / rest_mass)
        return 0.0

    def containment(self, q, n, H):
        q = self.check_q(q)
        k = self.effective_n(q, n)
        mask = _as_mask(H, q.shape[0])
        a = self.hub(q)
        if not mask[a]:
            return 0.0
        if k == 1:
            return 1.0
        inside = mask.copy()
        inside[a] = False
        off_hub = np.ones_like(mask)
        off_hub[a] = False
        return float(q[inside].sum() / q[off_hub].sum())


class Independent(DraftScheme):
    name = "independent"

    def check_q(self, q):
        arr = np.asarray(q, dtype=np.float64)
        if arr.ndim != 2:
            raise SpecTheoryValueError(
                f"q: sampling='independent' needs one draft distribution per drafter, shape (n, V); got {arr.shape}"
            )
        return check_distribution(arr, "q")

    def _rows(self, q, n):
        q = self.check_q(q)
        n = check_n(n)
        if q.shape[0] != n:
            raise SpecTheoryValueError(f"q: sampling='independent' has {q.shape[0]} drafter rows but n = {n}")
        return q, n

    def effective_n(self, q, n):
        return self._rows(q, n)[1]

    def sample(self, q, n, rng):
        q, n = self._rows(q, n)
        rng = _check_rng(rng)
        return np.array([rng.choice(q.shape[1], p=q[i]) for i in range(n)], dtype=np.int64)

    def tuple_law(self, q, n):
        q, n = self._rows(q, n)
        supports = [np.flatnonzero(q[i] > 0) for i in range(n)]
        _count_guard(float(np.prod([len(s) for s in supports])), "independent")
        tuples = np.array(list(itertools.product(*supports)), dtype=np.int64).reshape(-1, n)
        probs = np.prod(q[np.arange(n), tuples], axis=1)
        return TupleLaw(tuples, probs)

    def tuple_probability(self, q, drafts):
        if q.ndim != 2 or q.shape[0] != len(drafts):
            return 0.0
        return float(np.prod(q[np.arange(len(drafts)), drafts]))

    def tuple_possible(self, q, drafts):
        return bool(q.ndim == 2 and q.shape[0] == len(drafts) and np.all(q[np.arange(len(drafts)), drafts] > 0))

    def containment(self, q, n, H):
        q, n = self._rows(q, n)
        mask = _as_mask(H, q.shape[1])
        return float(np.prod(q[:, mask].sum(axis=1)))


SCHEMES: dict[str, DraftScheme] = {
    s.name: s for s in (IID(), WithoutReplacement(), Greedy(), TopK(), Hub(), Independent())
}


def get_scheme(sampling: str) -> DraftScheme:
    """The draft scheme registered under ``sampling``."""
    try:
        return SCHEMES[sampling]
    except (KeyError, TypeError):
        raise SpecTheoryValueError(
            f"sampling: unknown draft scheme {sampling!r}; choose one of {', '.join(SCHEMES)}"
        ) from None
