"""spectheory: acceptance bounds for speculative decoding.

Notation follows REFERENCE.md: ``p`` is always the target distribution, ``q`` always the draft.

>>> import spectheory as st
>>> round(st.optimal_acceptance([0.5, 0.5], [0.9, 0.1], n=1), 12)
0.6
"""

from ._validation import SUM_RTOL, SpecTheoryValueError
from .logits import from_logits
from .topk_io import TopKLogprobs, read_topk
from .schemes import SCHEMES, DraftScheme, TupleLaw, get_scheme

# The solvers subpackage depends on the core above; importing it last keeps the dependency
# direction (simulations -> solvers -> core) while exposing the public entry points here.
from . import solvers  # noqa: E402
from .solvers.optimal import optimal_acceptance  # noqa: E402
from .solvers.intervals import AcceptanceInterval, optimal_acceptance_interval  # noqa: E402
from . import verifiers  # noqa: E402
from .verifiers import acceptance, verifier  # noqa: E402
from .compare import compare  # noqa: E402
from .rule_audit import AuditResult, audit  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "AcceptanceInterval",
    "SUM_RTOL",
    "TopKLogprobs",
    "SCHEMES",
    "DraftScheme",
    "SpecTheoryValueError",
    "TupleLaw",
    "acceptance",
    "audit",
    "compare",
    "from_logits",
    "get_scheme",
    "optimal_acceptance",
    "optimal_acceptance_interval",
    "read_topk",
    "solvers",
    "verifier",
    "verifiers",
]


def __getattr__(name):
    # simulations pulls in heavier dependencies; load it on first use only.
    if name == "simulations":
        import importlib

        return importlib.import_module(".simulations", __name__)
    raise AttributeError(f"module 'spectheory' has no attribute {name!r}")
