"""The verifier interface shared by every published multi-draft verifier.

A verifier turns drafts X = (X_1, ..., X_n), drawn by its native draft scheme from the draft
distribution q, into one output token Y. It is *lossless* when Y ~ p exactly, whatever q is; its
*acceptance* is P(Y ∈ {X_1, ..., X_n}) (REFERENCE §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import (
    SpecTheoryValueError,
    check_distribution,
    check_n,
    check_pair,
    check_single_pair,
)
from ..schemes import _check_rng, get_scheme
from ._branching import RandomOracle


@dataclass(frozen=True)
class Acceptance:
    """A verifier's acceptance with its provenance.

    Attributes
    ----------
    value : float or numpy.ndarray
        The acceptance (an array of shape (B,) for a batch).
    stderr : float or numpy.ndarray
        Standard error of ``value``: 0 where it is exact.
    exact : bool
        Whether ``value`` is exact (a closed form or an exact recursion) rather than an estimate.
    method : str
        How it was computed (``"closed form"``, ``"recursion"``, ``"monte carlo"``, ...).
    """

    value: object
    stderr: object
    exact: bool
    method: str


def residual(R: np.ndarray, D: np.ndarray) -> np.ndarray:
    """norm((R − D)+), the law of the output after a rejection; R itself when (R − D)+ has no mass.

    The zero-mass case occurs only when R = D, where a rejection has probability 0 (REFERENCE §3);
    returning R keeps the rule defined there without affecting any branch of positive probability.
    Works on (V,) vectors and row-wise on (B, V) batches.
    """
    r = np.maximum(R - D, 0.0)
    mass = r.sum(axis=-1, keepdims=True)
    return np.where(mass > 0, r / np.where(mass > 0, mass, 1.0), R)


def as_token_ids(d: np.ndarray) -> np.ndarray:
    """Draft token ids as int64; integral floats are accepted, anything else is an error."""
    integral_floats = np.issubdtype(d.dtype, np.floating) and np.all(np.isfinite(d)) and np.all(d == np.round(d))
    if not (np.issubdtype(d.dtype, np.integer) or integral_floats):
        raise SpecTheoryValueError(f"drafts: token ids must be integers, got dtype {d.dtype}")
    return d.astype(np.int64)


def accept_prob(target_mass: float, draft_mass: float) -> float:
    """min(1, target/draft), with the convention 1 when the draft mass is 0 (never drafted)."""
    if target_mass >= draft_mass:  # also covers draft_mass = 0 and avoids overflow in the ratio
        return 1.0
    return target_mass / draft_mass


class Verifier:
    """Base class of the multi-draft verifiers.

    Subclasses set ``name``, ``sampling`` (the native draft scheme) and implement ``_rule`` and
    ``_acceptance``. The public methods validate their inputs and share one code path:

    * :meth:`draft` draws the drafts with the native scheme;
    * :meth:`verify` runs ``_rule`` with random decisions;
    * :func:`~spectheory.verifiers.exact_output_law` runs the same ``_rule`` over every branch;
    * :meth:`acceptance` is the verifier's exact acceptance, computed independently of ``_rule``.
    """

    name: str = ""
    sampling: str = "iid"
    #: draft schemes the verifier may be used with (its native one first)
    samplings: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<verifier {self.name!r} (drafts: {self.sampling})>"

    # -- validation ---------------------------------------------------------------------------
    @property
    def scheme(self):
        return get_scheme(self.sampling)

    def check_n(self, n) -> int:
        """Raise if the verifier does not support ``n`` drafts; subclasses narrow this."""
        return check_n(n)

    def check_n_exact(self, n) -> int:
        """Validate ``n`` for the exact acceptance; by default the same as :meth:`check_n`. A verifier
        whose sampler must draw n tokens but whose acceptance has a closed form for any n widens it."""
        return self.check_n(n)

    def check_drafts(self, p, q, drafts):
        """Validate one position and a draft tuple; return (p, q, drafts) as float64/int64 arrays."""
        p, q, _ = check_single_pair(p, q, 1, self.scheme)
        d = np.asarray(drafts)
        if d.ndim != 1 or d.size == 0:
            raise SpecTheoryValueError(f"drafts: expected a non-empty 1-D array of token ids, got shape {d.shape}")
        d = as_token_ids(d)
        V = p.shape[0]
        if d.min() < 0 or d.max() >= V:
            bad = int(d[(d < 0) | (d >= V)][0])
            raise SpecTheoryValueError(f"drafts: token id {bad} is outside the vocabulary [0, {V})")
        self._check_draft_count(len(d), q)
        if not self.scheme.tuple_possible(q, d):
            raise SpecTheoryValueError(
                f"drafts: the tuple {d.tolist()} is impossible under {self.sampling!r} drafting from q "
                f"({self._why_impossible(q, d)})"
            )
        return p, q, d

    def _check_draft_count(self, k: int, q: np.ndarray) -> None:
        self.check_n(k)

    def _why_impossible(self, q, d) -> str:
        if np.any(q[d] <= 0) if q.ndim == 1 else np.any(q[np.arange(len(d)) % q.shape[0], d] <= 0):
            return "a draft has q = 0"
        if self.scheme.distinct and len(set(d.tolist())) < len(d):
            return "a token is repeated, but this scheme draws distinct tokens"
        return "see spectheory.schemes for the scheme's tuple law"

    # -- the three operations -----------------------------------------------------------------
    def draft(self, q, n, rng=None) -> np.ndarray:
        """Draw ``n`` drafts from q with the native scheme (fewer for distinct schemes when q has a
        smaller support). ``rng``: a :class:`numpy.random.Generator` or an integer seed."""
        self.check_n(n)
        return self.scheme.sample(q, n, _check_rng(rng))

    def verify(self, p, q, drafts, rng=None) -> tuple[int, bool]:
        """Run the verifier on ``drafts``; return ``(token, accepted)``, ``accepted = token ∈ drafts``."""
        p, q, d = self.check_drafts(p, q, drafts)
        rng = _check_rng(rng)
        out = self._rule(p, q, d, RandomOracle(rng))
        token = int(out) if not isinstance(out, np.ndarray) else int(rng.choice(p.shape[0], p=out / out.sum()))
        return token, bool(np.any(d == token))

    def acceptance(self, p, q, n):
        """Exact acceptance P(Y ∈ drafts) for ``n`` drafts: a float, or shape (B,) for a batch."""
        return self.acceptance_detail(p, q, n).value

    def acceptance_detail(self, p, q, n) -> Acceptance:
        """:meth:`acceptance` with its standard error and method (see :class:`Acceptance`).

        ``p`` and ``q`` may be torch tensors (any float dtype, any device, ``requires_grad``
        accepted): they are detached and converted to float64; a batch then gives float64 tensors
        on the input's device, one position a float.
        """
        n = self.check_n_exact(n)
        device = _torch_device(p, q)
        if device is not None:
            p, q = _from_torch(p), _from_torch(q)
        P, Q, n, batched = check_pair(p, q, n, self.sampling)
        acc = self._acceptance(P, Q, n)
        if not isinstance(acc, Acceptance):
            acc = Acceptance(np.clip(acc, 0.0, 1.0), np.zeros(len(acc)), True, "closed form")
        if batched:
            if device is not None:
                import torch

                as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), device=device)  # noqa: E731
                return Acceptance(as_t(acc.value), as_t(acc.stderr), acc.exact, acc.method)
            return acc
        return Acceptance(float(acc.value[0]), float(np.asarray(acc.stderr)[0]), acc.exact, acc.method)

    # -- subclass hooks -----------------------------------------------------------------------
    def _rule(self, p, q, drafts, oracle):  # pragma: no cover - abstract
        raise NotImplementedError

    def _acceptance(self, P: np.ndarray, Q: np.ndarray, n: int):  # pragma: no cover - abstract
        """Acceptance for validated batches P, Q (shape (B, V)); returns (B,) or an Acceptance."""
        raise NotImplementedError


def _torch_device(*xs):
    """The device of the first torch tensor among ``xs``, or None when none is a tensor."""
    from ._xp import is_torch

    for x in xs:
        if is_torch(x):
            return x.device
    return None


def _from_torch(x):
    """A torch tensor as a float64 NumPy array (detached, on the CPU); anything else unchanged.

    Rows of a lower-precision tensor (bfloat16, float16, float32) are rescaled to sum to 1 when
    their sum is within that dtype's machine epsilon of 1 (bf16 rows of an exact distribution sum to
    1 only within ~2^-8), so the usual checks of :func:`~spectheory._validation.check_distribution`
    (and their messages) then apply.
    """
    from ._xp import is_torch

    if not is_torch(x):
        return x
    import torch

    if x.dtype == torch.bool or x.is_complex():
        return x.detach().cpu().numpy()  # rejected, with the argument's name, by the usual checks
    a = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    eps = float(torch.finfo(x.dtype).eps) if x.is_floating_point() else 0.0
    if eps > 1e-10 and a.ndim in (1, 2) and a.size and np.all(np.isfinite(a)) and np.all(a >= 0):
        sums = a.sum(axis=-1, keepdims=True)
        a = np.where(np.abs(sums - 1.0) <= eps, a / np.where(sums > 0, sums, 1.0), a)
    return a


def as_distribution(x, name: str) -> np.ndarray:
    return check_distribution(x, name, allow_batch=False)
