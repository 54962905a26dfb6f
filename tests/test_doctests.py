"""Every docstring example runs and prints what it shows (imported under the installed names)."""

import doctest
import importlib
import pkgutil

import pytest

import spectheory


def _modules():
    names = {"spectheory"}
    for pkg in ("spectheory", "spectheory.solvers", "spectheory.simulations", "spectheory.verifiers"):
        mod = importlib.import_module(pkg)
        names.add(pkg)
        for info in pkgutil.iter_modules(mod.__path__):
            if pkg == "spectheory" and info.name in ("solvers", "simulations", "verifiers", "__main__", "examples"):
                continue
            names.add(f"{pkg}.{info.name}")
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_examples_exist():
    """The public entry points carry runnable examples."""
    finder = doctest.DocTestFinder()
    for obj in (spectheory.optimal_acceptance, spectheory.from_logits, spectheory.solvers.transport_lp,
                spectheory.solvers.subset_dual_brute, spectheory.solvers.bound_rows,
                spectheory.acceptance, spectheory.verifier, spectheory.verifiers.exact_output_law,
                spectheory.solvers.canonical_selection):
        assert any(t.examples for t in finder.find(obj)), obj.__name__
