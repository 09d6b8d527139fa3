"""Audit cases: data-parallel set-up (issue 11) -- launcher variables, backend, timeout, loss weights."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator

from pyg_schnet.train import TrainConfig, distributed

from .registry import case


@contextlib.contextmanager
def environment(values: Dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@case(
    "distributed",
    "collective timeout variable that is not a number",
    ValueError,
    r"PYG_SCHNET_DIST_TIMEOUT_S must be a number of seconds, got 'ten'",
)
def _(tmp: Path):
    with environment({distributed.ENV_TIMEOUT: "ten"}):
        distributed.timeout_seconds()


@case("distributed", "backend nccl asked for on a CPU device", ValueError, r"backend nccl needs a CUDA device")
def _(tmp: Path):
    distributed.choose_backend("cpu", "nccl")


@case(
    "distributed",
    "launcher variables with RANK outside 0..WORLD_SIZE-1",
    ValueError,
    r"\$RANK = 2 must lie in 0\.\.\$WORLD_SIZE-1 = 1",
)
def _(tmp: Path):
    with environment(
        {"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}
    ):
        distributed.init_from_env("cpu")


@case(
    "distributed",
    "energy weight 0 and rho 0 (nothing to train on)",
    ValueError,
    r"energy_weight = 0 and rho = 0 leave no loss",
)
def _(tmp: Path):
    TrainConfig(rho=0.0, energy_weight=0.0)
