# Every target creates .venv on first use and installs the project into it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned to the builds that lie on this machine's disk so that no resolver
# pulls a different (multi-GB) build from the registry.
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-fast bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' $(TORCH)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dogbreed demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .dogbreed build *.egg-info
