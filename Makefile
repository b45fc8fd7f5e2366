# splitvault: `make demo` opens the terminal demo, `make test` runs the tests.
# Both create .venv and install the project (with its dev extras) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast security lint bench clean check-libsodium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

check-libsodium: $(STAMP)
	@$(BIN)/python -c "import splitvault.crypto.oprf" 2>/dev/null || \
	  { $(BIN)/python -c "import splitvault.crypto.oprf"; exit 1; }

demo: check-libsodium
	$(BIN)/splitvault demo

test: check-libsodium
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: check-libsodium
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

security: check-libsodium
	$(BIN)/python -m pytest -m security -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r src

bench: check-libsodium
	$(BIN)/splitvault bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist src/*.egg-info
