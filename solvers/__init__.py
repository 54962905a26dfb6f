"""spectheory.solvers: exact optimal multi-draft acceptance.

* :func:`transport_lp` — the SpecTr optimal-transport LP (HiGHS or cvxpy), ground truth for small V.
* :func:`subset_dual_brute` — the subset (min-cut) dual by enumeration of all 2^V subsets, any scheme.
* :func:`bound_rows` — the one batched engine of every scheme's bound (iid, without_replacement,
  greedy, hub, topk), NumPy or torch rows, every n in one pass (:mod:`.bounds`).
* :func:`canonical_selection` — Khisti et al.'s selection LP (canonical optimal verifier), cvxpy.
* :func:`optimal_selection_law`, :func:`priority_mixture`, :func:`priority_selector` — an optimal
  selection law in closed form and a random priority order inducing it (no LP).
* :func:`optimal_acceptance` — the public dispatcher (also ``spectheory.optimal_acceptance``).
* :mod:`mdp` — how many tokens to draft: Leviathan's closed forms, the exact optimal drafting policy
  (Dinkelbach + backward induction), SpecDec++'s threshold rule, fixed K.
* :mod:`tree_dp` — Sequoia's dynamic program for the best draft tree.
"""

from .canonical import MAX_SELECTION_VARIABLES, CanonicalResult, canonical_selection
from .brute_dual import MAX_BRUTE_V, SubsetDualResult, containment_table, subset_dual_brute
from .bounds import bound_rows
from .transport import MAX_LP_VARIABLES, TransportLPResult, transport_lp
from .exponential_race import wor_containment, wor_containment_prefixes
from .optimal import optimal_acceptance
from .priority import (
    MAX_PRIORITY_V,
    PriorityMixture,
    SelectionLaw,
    optimal_selection_law,
    priority_mixture,
    priority_selector,
)
from . import mdp, tree_dp
from .tree_dp import best_tree, best_tree_budget

__all__ = [
    "CanonicalResult",
    "MAX_SELECTION_VARIABLES",
    "canonical_selection",
    "MAX_BRUTE_V",
    "MAX_LP_VARIABLES",
    "MAX_PRIORITY_V",
    "PriorityMixture",
    "SelectionLaw",
    "containment_table",
    "optimal_selection_law",
    "priority_mixture",
    "priority_selector",
    "SubsetDualResult",
    "TransportLPResult",
    "best_tree",
    "best_tree_budget",
    "mdp",
    "optimal_acceptance",
    "bound_rows",
    "subset_dual_brute",
    "transport_lp",
    "tree_dp",
    "wor_containment",
    "wor_containment_prefixes",
]
