# Fresh machine: `make run` (set up .venv, run the main job `spectheory report` on the shipped reference
# pair, writing report/) and `make test` (set up .venv, run the test suite). Setup runs once; it reruns
# when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
EXAMPLES := spectheory/examples

.PHONY: setup run bound test bench clean

setup: $(STAMP)

# CPU PyTorch 2.13.0 first: pip finds it as a local file; any other torch pulls GBs of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test,plot,replay]'
	touch $(STAMP)

run: setup
	$(BIN)/spectheory report --out report

bound: setup
	$(BIN)/spectheory bound --target $(EXAMPLES)/target.npy --draft $(EXAMPLES)/draft.npy -n 1 2 4 8

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	@found=0; for f in benchmarks/bench_*.py; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "== $$f"; $(BIN)/python "$$f" || exit $$?; \
	done; \
	[ $$found = 1 ] || echo "no benchmarks in benchmarks/ yet"

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis bench-results report
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
