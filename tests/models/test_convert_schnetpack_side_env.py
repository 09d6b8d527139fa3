"""Runs ``tests/models/test_convert_schnetpack.py`` in the SchNetPack side environment
(docs/benchmarks.md, "SchNetPack side environment"; ``PYG_SCHNET_SPK_PYTHON`` names its interpreter,
default ``/work/venv-spk/bin/python``), with this checkout first on ``PYTHONPATH``, so this suite
exercises the SchNetPack conversion although SchNetPack does not install next to torch 2.13. Skips
where that interpreter is absent or cannot import schnetpack."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIDE_PYTHON = Path(os.environ.get("PYG_SCHNET_SPK_PYTHON", "/work/venv-spk/bin/python"))
SHIM = (
    "import sys, typing, torch.utils.data.dataloader as d; d.T_co = getattr(d, 'T_co', None) or "
    "typing.TypeVar('T_co', covariant=True); import schnetpack; print(schnetpack.__version__)"
)


def test_schnetpack_conversion_in_the_side_environment() -> None:
    if not SIDE_PYTHON.exists():
        pytest.skip(f"no SchNetPack side environment at {SIDE_PYTHON} (set PYG_SCHNET_SPK_PYTHON)")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    probe = subprocess.run([str(SIDE_PYTHON), "-c", SHIM], capture_output=True, text=True, env=env, timeout=300)
    if probe.returncode != 0:
        pytest.skip(f"{SIDE_PYTHON} cannot import schnetpack: {probe.stderr.strip().splitlines()[-1:]}")
    test_file = REPO / "tests" / "models" / "test_convert_schnetpack.py"
    run = subprocess.run(
        [
            str(SIDE_PYTHON),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "ignore::DeprecationWarning",
            str(test_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode == 0, f"schnetpack {probe.stdout.strip()} side run failed:\n{tail}"
    assert " passed" in run.stdout and "skipped" not in run.stdout, tail
