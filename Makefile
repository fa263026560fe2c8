# Two commands matter: `make run` and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REDIS_URL ?= redis://127.0.0.1:6379/0
export REDIS_URL

.PHONY: run test lint bench screenshots venv clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "make: could not create $(VENV); install python3.11-venv" >&2; exit 1; }
	@echo "make: installing threadline and its test tools into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/python -m pip install --quiet --upgrade pip && \
	   $(BIN)/python -m pip install --quiet -e '.[test]'; } > $(VENV)/install.log 2>&1 || \
	  { cat $(VENV)/install.log; echo "make: install failed (above)" >&2; exit 1; }
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@$(BIN)/threadline dev --demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	@scripts/ensure-redis
	@scripts/ensure-chromium
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	@scripts/ensure-redis
	@for b in rules stats v2client profiles lifecycle pipeline ingress twin_traffic forward; do \
	  echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

screenshots: $(STAMP)
	@scripts/ensure-chromium
	$(BIN)/python scripts/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
