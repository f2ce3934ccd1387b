# qbn: two commands set up (make install is implied), `make run` trains, `make test` tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install data run test test-all lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,launchers,onnx]'
	touch $(STAMP)

install: $(STAMP) ## make .venv and install qbn with its pinned torch

data: $(STAMP) ## find or fetch Fashion-MNIST (Debian package, else torchvision download)
	$(BIN)/python -m qbn.data.fetch fashion_mnist

run: install data ## train the quickstart: a binary-weight ResNet-20 on real Fashion-MNIST
	$(BIN)/python -m qbn.train experiment=quickstart

test: install ## fast tests (minutes on 2 cores)
	$(BIN)/python -m pytest

test-all: install ## every test, the slow ones too
	$(BIN)/python -m pytest -m ''

lint: install ## ruff, and import-linter: layers import one way (pyproject.toml, docs/architecture.md)
	$(BIN)/ruff check src tests experiments
	$(BIN)/lint-imports

bench: install ## benchmarks (print ratios measured in one run; not tests)
	$(BIN)/python experiments/bench/step_time.py
	$(BIN)/python experiments/bench/sign_instruments.py
	$(BIN)/python experiments/bench/kernels_qbn.py
	$(BIN)/python experiments/bench/export_sizes.py
	$(BIN)/python experiments/bench/train_step.py
	$(BIN)/python experiments/bench/onnx_inference.py
	$(BIN)/python experiments/bench/gpu_step.py

clean: ## remove the virtual environment and caches (keeps data/ and outputs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache
