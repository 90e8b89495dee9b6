# Every target creates .venv on first use and installs the project into it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned to the builds that lie on this machine's disk so that no resolver
# pulls a different (multi-GB) build from the registry.
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: install browser-deps bench-deps demo test test-fast bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' $(TORCH)
	touch $(STAMP)

# Debian's Chromium for the browser tests; where it cannot be installed they skip, saying why.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: Chromium could not be installed; tests/test_browser.py will be skipped"

# The AWS CLI, for benchmarks/bench_upload.py only (`aws s3 sync` is a baseline there): its own venv,
# because awscli pins a botocore of its own; never a runtime dependency.
AWSCLI  := .venv-awscli/bin/aws
bench-deps: $(AWSCLI)

$(AWSCLI):
	$(PY) -m venv .venv-awscli
	.venv-awscli/bin/pip install -q --disable-pip-version-check awscli==1.46.3

demo: $(STAMP)
	$(BIN)/dogbreed demo

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP) bench-deps
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP) bench-deps
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) .venv-awscli .dogbreed build *.egg-info
