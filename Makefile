# The two commands a new user needs: `make serve` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: serve test lint typecheck pytest demo bench screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## run the service embedded (SQLite + in-memory), on http://127.0.0.1:8000/
	$(BIN)/scoreboard serve

test: lint typecheck pytest  ## the whole suite: lint, types, every test tier

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/ruff check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## end-to-end benchmarks against a real `scoreboard serve` (see docs/benchmarks.md)
	$(BIN)/python bench/score_updates.py

screenshot: $(STAMP)  ## docs/screenshot.png and docs/screenshot-phone.png (needs Debian's chromium)
	$(BIN)/python scripts/screenshot.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
