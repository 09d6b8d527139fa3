"""What the ``pyg-schnet`` command loads before it prints a help text (docs/benchmarks.md, "Start-up time").

``import pyg_schnet`` loads nothing of torch (its names load on first use, PEP 562), so ``pyg-schnet
--help`` loads the command and standard-library modules only; these tests keep it so, and keep the
parsers of ``md`` and ``evaluate`` from adding the trainer, the data sets, the simulation or matplotlib.
No timing assertions: the modules loaded are the measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence, Set

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Run the command as ``python -m pyg_schnet ARGS`` would, then report ``sys.modules`` on stderr's last line.
RUN_COMMAND = """
import json, runpy, sys
sys.argv = ["pyg-schnet", *json.loads(sys.argv[1])]
try:
    runpy.run_module("pyg_schnet", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

#: Heavy parts that no help text needs.
NOT_FOR_HELP = (
    "pyg_schnet.train",
    "pyg_schnet.datasets",
    "pyg_schnet.batching",
    "pyg_schnet.simulation",
    "matplotlib",
)


def _run(args: Sequence[str]) -> tuple[str, Set[str]]:
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", RUN_COMMAND, json.dumps(list(args))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stdout + proc.stderr
    return proc.stdout, set(report["modules"])


@pytest.fixture(scope="module")
def package_modules() -> Set[str]:
    """What ``import pyg_schnet`` alone loads."""
    code = "import pyg_schnet, sys, json; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_help_loads_nothing_beyond_the_package_and_the_command(package_modules):
    out, loaded = _run(["--help"])
    assert out.startswith("usage: pyg-schnet") and "{convert,demo,evaluate,export,md,train}" in out
    added = {m for m in loaded - package_modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert added <= {"pyg_schnet.cli", "pyg_schnet.__main__"}, sorted(added)


@pytest.mark.parametrize(
    "command, parser_module",
    [("md", "pyg_schnet.experiments.md_command"), ("evaluate", "pyg_schnet.experiments.evaluate")],
)
def test_subcommand_help_loads_only_its_parser(package_modules, command, parser_module):
    out, loaded = _run([command, "--help"])
    assert out.startswith(f"usage: pyg-schnet {command}")
    assert parser_module in loaded
    added = loaded - package_modules
    assert not [m for m in added if m.startswith(NOT_FOR_HELP)], sorted(added)


def test_train_help_without_a_protocol_loads_no_protocol(package_modules):
    out, loaded = _run(["train", "--help"])
    assert "md17" in out and "qm9" in out and "iso17" in out
    assert not [m for m in loaded - package_modules if m.startswith(("pyg_schnet.experiments", *NOT_FOR_HELP))]


def test_version_is_read_without_the_experiments(package_modules):
    out, loaded = _run(["--version"])
    from pyg_schnet import __version__

    assert out.strip() == f"pyg-schnet {__version__}"
    assert not [m for m in loaded - package_modules if m.startswith(("pyg_schnet.experiments", *NOT_FOR_HELP))]


def test_help_and_the_package_import_no_torch(package_modules):
    """The top level loads its names on first use: neither ``import pyg_schnet`` nor ``--help`` imports torch."""
    _, loaded = _run(["--help"])
    assert "torch" not in loaded and "torch" not in package_modules
    assert "pyg_schnet.models" not in package_modules


def test_torch_cluster_is_imported_when_the_first_radius_graph_is_built():
    """pyg-schnet's own share of the start-up: torch-cluster (it loads scipy) waits for its first use."""
    pytest.importorskip("torch_cluster", reason="torch-cluster is not installed")
    code = (
        "import sys, torch, pyg_schnet\n"
        "from pyg_schnet.graph import build_pairs\n"
        "before = 'torch_cluster' in sys.modules\n"
        "build_pairs(torch.rand(5, 3), torch.zeros(5, dtype=torch.long), cutoff=1.0)\n"
        "print(before, 'torch_cluster' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
