# Every target creates .venv on first use and installs the project into it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned to the builds that lie on this machine's disk so that no resolver
# pulls a different (multi-GB) build from the registry.
TORCH   := torch==2.14.1 torchvision==0.29.1
# The main venv gets what a fresh install gets (SageMaker SDK v3). A second venv keeps SDK v2 for the
# suites that talk to SageMaker (through moto), so both majors stay tested; tests/test_sdk_majors.py
# compares the requests the two send.
SDK2       := .venv-sdk2
SDK2_STAMP := $(SDK2)/.installed
SDK_SUITE  := tests/test_sdk_majors.py tests/test_train_sagemaker.py tests/test_tune_sagemaker.py \
              tests/test_endpoints_sagemaker.py tests/test_backend_contract.py tests/test_smdebug_compat.py

.PHONY: install browser-deps demo test test-fast test-sdk2 sdk-venv bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' $(TORCH)
	touch $(STAMP)

sdk-venv: $(SDK2_STAMP)

$(SDK2_STAMP): pyproject.toml
	test -x $(SDK2)/bin/python || $(PY) -m venv $(SDK2)
	$(SDK2)/bin/pip install -q --disable-pip-version-check $(TORCH)
	$(SDK2)/bin/pip install -q --disable-pip-version-check -e '.[dev]' 'sagemaker>=2.257,<3' $(TORCH)
	touch $(SDK2_STAMP)

# Debian's Chromium for the browser tests; where it cannot be installed they skip, saying why.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: Chromium could not be installed; tests/test_browser.py will be skipped"

demo: $(STAMP)
	$(BIN)/dogbreed demo

test: $(STAMP) browser-deps
	$(BIN)/python -m pytest -q
	@if $(MAKE) --no-print-directory sdk-venv; then $(MAKE) --no-print-directory test-sdk2; \
	 else echo "note: $(SDK2) could not be built; the SageMaker suites ran on one SDK major only"; fi

# The SageMaker suites again, on SDK v2.
test-sdk2: $(SDK2_STAMP)
	$(SDK2)/bin/python -m pytest -q $(SDK_SUITE)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) $(SDK2) .dogbreed build *.egg-info
