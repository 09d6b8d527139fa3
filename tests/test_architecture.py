"""The package's structure: one-way layers (pyproject.toml's import contract), no import circle, a
top level that loads only the model and its files, and the 0.2 import paths as warned aliases."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import pytest
from architecture import REPO, cycles, import_graph

from pyg_schnet import _compat

#: Parts of the package that ``import pyg_schnet`` must not load.
NOT_ON_IMPORT = (
    "pyg_schnet.train",
    "pyg_schnet.datasets",
    "pyg_schnet.batching",
    "pyg_schnet.simulation",
    "pyg_schnet.experiments",
    "pyg_schnet.cli",
)


LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml'))"


def test_the_import_contract_holds():
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e .[test])")
    result = subprocess.run([sys.executable, "-c", LINT], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "one-way layers KEPT" in result.stdout


def test_the_import_contract_catches_an_upward_import(tmp_path):
    """The contract is not vacuous: an io module importing the trainer breaks it."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e .[test])")
    import shutil

    copy = tmp_path / "pyg_schnet"
    shutil.copytree(REPO / "pyg_schnet", copy, ignore=shutil.ignore_patterns("__pycache__", "*.npz"))
    with open(copy / "io" / "devices.py", "a") as handle:
        handle.write("\nfrom pyg_schnet.train import trainer  # noqa\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-c", LINT],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "one-way layers BROKEN" in result.stdout and "pyg_schnet.io.devices -> pyg_schnet.train" in result.stdout


def test_no_import_circle_anywhere():
    graph = import_graph()
    assert "pyg_schnet.models.schnet" in graph and graph["pyg_schnet.models.schnet"]  # the graph is read
    assert cycles(graph) == []


def test_cycles_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _modules_after(code: str) -> set:
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_pyg_schnet_loads_nothing_and_its_names_no_trainer_data_or_simulation_code():
    assert {m for m in _modules_after("import pyg_schnet") if m.startswith(("pyg_schnet.", "torch"))} == set()
    loaded = _modules_after("import pyg_schnet\npyg_schnet.SchNet, pyg_schnet.load_model")
    ours = {m for m in loaded if m.startswith("pyg_schnet")}
    assert "pyg_schnet.models.schnet" in ours and "pyg_schnet.io.model_file" in ours
    assert not [m for m in ours if m.startswith(NOT_ON_IMPORT)], sorted(ours)
    # torch_geometric itself imports its loader and tqdm (its __init__); pyg_schnet adds none of theirs
    baseline = _modules_after("import torch_geometric.nn.conv")
    added = loaded - baseline
    assert not [m for m in added if m.startswith(("torch_geometric.loader", "tqdm"))], sorted(added)


@pytest.mark.parametrize("old", sorted(_compat.MOVED))
def test_old_import_paths_warn_and_give_the_new_names(old):
    for name in [m for m in sys.modules if m == old or m.startswith(old + ".")]:
        del sys.modules[name]
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {_compat.MOVED[old][0]}"):
        module = importlib.import_module(old)
    new = importlib.import_module(_compat.MOVED[old][0])
    public = [n for n in getattr(new, "__all__", dir(new)) if not n.startswith("_")]
    for name in public[:5]:
        assert getattr(module, name) is getattr(new, name), (old, name)


def test_old_names_that_moved_apart_are_found_in_their_new_modules():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pyg_schnet.train import checkpoint, cli
    from pyg_schnet.io import devices, model_file, records
    from pyg_schnet.train import state

    assert checkpoint.load_model is model_file.load_model and checkpoint.seed_everything is state.seed_everything
    assert cli.resolve_device is devices.resolve_device and cli.file_record is records.file_record
    with pytest.raises(AttributeError, match="moved"):
        getattr(checkpoint, "no_such_name")  # noqa: B009


def test_new_paths_raise_no_deprecation_warning():
    code = (
        "import warnings; warnings.filterwarnings('error', 'pyg_schnet.* moved to', DeprecationWarning)\n"
        "import pyg_schnet, pyg_schnet.nn, pyg_schnet.graph, pyg_schnet.io.units, pyg_schnet.batching\n"
        "import pyg_schnet.datasets, pyg_schnet.train, pyg_schnet.simulation.ase, pyg_schnet.simulation.md\n"
        "import pyg_schnet.experiments.protocols.md17, pyg_schnet.experiments.evaluate, pyg_schnet.cli\n"
        "import pyg_schnet.experiments.md_command, pyg_schnet.experiments.demo.__main__\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
