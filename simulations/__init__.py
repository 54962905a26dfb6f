"""spectheory.simulations: Monte Carlo of the verifiers and of multi-round decoding (numba).

Submodules load on first use (``st.simulations.montecarlo``, ``st.simulations.decoding``), so
importing spectheory does not compile or import anything heavy.
"""

import importlib

_SUBMODULES = ("montecarlo", "decoding", "record", "replay", "reference", "report", "sweep")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'spectheory.simulations' has no attribute {name!r}")
