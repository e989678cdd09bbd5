# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install hubctl with its test tools

run: $(STAMP)  ## the main job on the embedded demo city: write, ingest, show
	rm -rf demo/lake
	$(BIN)/hubctl demo --dir demo

test: $(STAMP)  ## lint, type-check and the whole test suite
	$(BIN)/ruff check hubctl adapters pipelines tests bench
	$(BIN)/mypy hubctl adapters pipelines
	bash scripts/ensure-mosquitto
	bash scripts/ensure-acme
	bash scripts/ensure-chromium
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check hubctl adapters pipelines tests bench
	$(BIN)/mypy hubctl adapters pipelines

bench: $(STAMP)  ## benchmarks (not part of the tests); figures go to docs/benchmarks.md
	bash scripts/ensure-mosquitto
	bash scripts/ensure-acme
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .acme-venv demo bench-out .pytest_cache .mypy_cache .ruff_cache
