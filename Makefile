# Every target creates .venv on first use and installs the project into it.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# torch is pinned to the builds that lie on this machine's disk so that no resolver
# pulls a different (multi-GB) build from the registry.
TORCH   := torch==2.14.1 torchvision==0.29.1
# AWS's own training and inference toolkits, for the contract tests (tests/test_toolkit_*.py). They
# pin protobuf>=5, which smdebug (protobuf<=3.20.3) cannot share, so they get their own venv that
# sees the main venv's packages (torch included) through a .pth file placed after its own.
TOOLKITS_VENV := .venv-toolkits
# TorchServe is the PyTorch inference container's model server (tests/test_torchserve_stack.py runs the real
# stack); the toolkit's torchserve.py imports pkg_resources, gone from setuptools 81 on.
TOOLKITS := sagemaker-training==5.1.4 sagemaker-inference==1.10.1 sagemaker-pytorch-inference==2.0.25 \
            torchserve==0.12.0 'setuptools<81'
# The main venv, where the whole suite runs, stays on SageMaker SDK v2 (explicitly: a plain install of
# the package resolves to v3). A second venv gets SDK v3 and runs the suites that talk to SageMaker
# (through moto) again, so both majors stay tested; tests/test_sdk_majors.py compares their requests.
SDK2_PIN   := 'sagemaker>=2.257,<3'
SDK3       := .venv-sdk3
SDK3_STAMP := $(SDK3)/.installed
SDK_SUITE  := tests/test_sdk_majors.py tests/test_train_sagemaker.py tests/test_tune_sagemaker.py \
              tests/test_endpoints_sagemaker.py tests/test_backend_contract.py tests/test_smdebug_compat.py \
              tests/test_sagemaker_refusals.py tests/test_scale_sagemaker.py tests/test_debugger_client_mode.py \
              tests/test_aws_e2e.py

.PHONY: install browser-deps toolkits bench-deps lint demo test test-fast test-sdk3 sdk-venv bench bench-quick clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' $(SDK2_PIN) $(TORCH)
	touch $(STAMP)

sdk-venv: $(SDK3_STAMP)

$(SDK3_STAMP): pyproject.toml
	test -x $(SDK3)/bin/python || $(PY) -m venv $(SDK3)
	$(SDK3)/bin/pip install -q --disable-pip-version-check $(TORCH)
	$(SDK3)/bin/pip install -q --disable-pip-version-check -e '.[dev]' 'sagemaker>=3,<4' $(TORCH)
	touch $(SDK3_STAMP)

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

# Where the toolkits cannot be built (no compiler for sagemaker-training's C extension, no registry),
# tests/test_toolkit_*.py skip, saying why.
toolkits: $(TOOLKITS_VENV)/.installed

$(TOOLKITS_VENV)/.installed: $(STAMP)
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; } || \
	  echo "note: Java could not be installed; tests/test_torchserve_stack.py will skip its TorchServe tests"
	rm -rf $(TOOLKITS_VENV)
	$(BIN)/python -m venv $(TOOLKITS_VENV)
	$(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > \
	  "$$($(TOOLKITS_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_main_venv.pth"
	$(TOOLKITS_VENV)/bin/pip install -q --disable-pip-version-check $(TOOLKITS) $(TORCH) 2>&1 | \
	  grep -v -e "^WARNING: Location" -e "dependency conflicts" -e "requires protobuf" || true
	$(TOOLKITS_VENV)/bin/python -c 'import sagemaker_training, sagemaker_pytorch_serving_container' && \
	  touch $@ || { rm -rf $(TOOLKITS_VENV); echo "note: AWS's toolkits could not be installed; \
	  tests/test_toolkit_*.py will be skipped"; }

demo: $(STAMP)
	$(BIN)/dogbreed demo

# ruff (configured in pyproject.toml): pycodestyle + pyflakes, 120-character lines
lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks

test: $(STAMP) browser-deps lint
	-$(MAKE) --no-print-directory toolkits
	$(BIN)/python -m pytest -q
	@if $(MAKE) --no-print-directory sdk-venv; then $(MAKE) --no-print-directory test-sdk3; \
	 else echo "note: $(SDK3) (SageMaker SDK v3) could not be built; the SageMaker suites were skipped on v3 \
	 and ran on SDK v2 only"; fi

# The SageMaker suites again, on SDK v3.
test-sdk3: $(SDK3_STAMP)
	$(SDK3)/bin/python -m pytest -q $(SDK_SUITE)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP) bench-deps
	$(BIN)/python benchmarks/run_all.py

bench-quick: $(STAMP) bench-deps
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) $(SDK3) $(TOOLKITS_VENV) .venv-awscli .dogbreed build *.egg-info
