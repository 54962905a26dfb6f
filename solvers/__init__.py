"""spectheory.solvers: exact optimal multi-draft acceptance.

* :func:`transport_lp` — the SpecTr optimal-transport LP (HiGHS or cvxpy), ground truth for small V.
* :func:`subset_dual_brute` — the subset (min-cut) dual by enumeration of all 2^V subsets, any scheme.
* :func:`prefix_dual` — the sorted-prefix algorithm (iid, without_replacement), any V, batched.
* :func:`greedy_bound`, :func:`hub_bound` — closed forms for greedy drafting and the SpecHub joint.
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
from .closed_forms import greedy_bound, hub_bound
from .sorted_prefix import prefix_dual, prefix_dual_numpy
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
    "greedy_bound",
    "best_tree",
    "best_tree_budget",
    "hub_bound",
    "mdp",
    "optimal_acceptance",
    "prefix_dual",
    "prefix_dual_numpy",
    "subset_dual_brute",
    "transport_lp",
    "tree_dp",
    "wor_containment",
    "wor_containment_prefixes",
]
