# aakit — two commands: `make test` and `make demo`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.aakit-installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[test,postgres]"
	touch $(STAMP)

test: setup
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q

demo: setup
	$(BIN)/aakit demo

bench: setup
	$(BIN)/aakit bench --preset synthetic

clean:
	rm -rf $(VENV) build *.egg-info
