"""The exact output law of a verifier's sampler, by enumerating every draft tuple and every branch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_single_pair
from ._branching import enumerate_branches


@dataclass(frozen=True)
class OutputLaw:
    """Exact law of a verifier's output.

    Attributes
    ----------
    law : numpy.ndarray, shape (V,)
        P(Y = y), summed over draft tuples and the verifier's accept/reject branches.
    acceptance : float
        P(Y ∈ drafts) under the same enumeration.
    branches : int
        Number of (tuple, branch) pairs visited.
    """

    law: np.ndarray
    acceptance: float
    branches: int


def exact_output_law(verifier, p, q, n) -> OutputLaw:
    """Exact law of ``verifier``'s output token when its drafts come from its native scheme.

    Sums, over every ordered draft tuple x of the scheme's tuple law Q (:meth:`tuple_law`) and every
    branch of the verifier's own rule (the code :meth:`~Verifier.verify` samples from), the branch
    probability times the outcome: the accepted token, or the residual law drawn from. A verifier is
    lossless iff the result equals p. Cost: tuples × branches × O(V); small V and n only.

    Examples
    --------
    >>> import numpy as np, spectheory as st
    >>> out = st.verifiers.exact_output_law(st.verifier("rrs"), [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], 2)
    >>> np.allclose(out.law, [0.5, 0.3, 0.2])
    True
    """
    if isinstance(verifier, str):
        from . import verifier as make

        verifier = make(verifier)
    n = verifier.check_n(n)
    p, q, n = check_single_pair(p, q, n, verifier.scheme)
    tuples = verifier.scheme.tuple_law(q, n)
    law = np.zeros(p.shape[0])
    accepted = 0.0
    count = 0
    for t, prob in zip(tuples.tuples, tuples.probs):
        for weight, out in enumerate_branches(lambda o, t=t: verifier._rule(p, q, t, o)):
            count += 1
            w = prob * weight
            if isinstance(out, np.ndarray):
                law += w * out
                accepted += w * out[np.unique(t)].sum()
            else:
                law[int(out)] += w
                accepted += w if np.any(t == int(out)) else 0.0
    return OutputLaw(law, float(accepted), count)
