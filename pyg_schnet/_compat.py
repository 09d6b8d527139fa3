"""The import paths of 0.2 that moved in 0.3.0 (the layered package): each still works for one release,
through a thin module at the old place that warns once (:class:`DeprecationWarning`) and hands over
the new module. They are removed in 0.5.

A leaf module at the old path calls :func:`alias`, which puts the new module itself under the old
name in :data:`sys.modules` (so ``monkeypatch.setattr(old_module, ...)`` and ``isinstance`` see the
one module, never a copy). A module whose names went to several places, or an old package, calls
:func:`forward`, which answers attribute look-ups from the new modules in order. The targets are
named as strings and imported when the old path is used, so no layer imports another through them;
:data:`MOVED` is the table ``tests/test_compat.py`` checks.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, Dict, Tuple

#: Old module -> the modules that hold its names now (the first one is "the" new place).
MOVED: Dict[str, Tuple[str, ...]] = {
    "pyg_schnet._backend": ("pyg_schnet.backend",),
    "pyg_schnet._atomic": ("pyg_schnet.io.files",),
    "pyg_schnet.periodic": ("pyg_schnet.graph.periodic",),
    "pyg_schnet.units": ("pyg_schnet.io.units",),
    "pyg_schnet.ase": ("pyg_schnet.simulation.ase",),
    "pyg_schnet.evaluate": ("pyg_schnet.experiments.evaluate",),
    "pyg_schnet.models.inference": ("pyg_schnet.models.md_evaluator",),
    "pyg_schnet.data": ("pyg_schnet.batching",),
    "pyg_schnet.data.dense": ("pyg_schnet.batching.dense",),
    "pyg_schnet.data.auto": ("pyg_schnet.batching.auto",),
    "pyg_schnet.md": ("pyg_schnet.simulation.md",),
    "pyg_schnet.md.analysis": ("pyg_schnet.simulation.md.analysis",),
    "pyg_schnet.md.simulate": ("pyg_schnet.simulation.md.simulate",),
    "pyg_schnet.md.plots": ("pyg_schnet.simulation.md.plots",),
    "pyg_schnet.md.cli": ("pyg_schnet.experiments.md_command",),
    "pyg_schnet.demo": ("pyg_schnet.experiments.demo",),
    "pyg_schnet.train.loop": ("pyg_schnet.train.trainer",),
    "pyg_schnet.train.checkpoint": (
        "pyg_schnet.io.model_file",
        "pyg_schnet.io.units",
        "pyg_schnet.io.files",
        "pyg_schnet.train.state",
    ),
    "pyg_schnet.train.cli": (
        "pyg_schnet.experiments.runner",
        "pyg_schnet.io.devices",
        "pyg_schnet.io.files",
        "pyg_schnet.io.records",
        "pyg_schnet.datasets.raw_files",
    ),
    "pyg_schnet.train.paper_values": ("pyg_schnet.experiments.paper_values",),
    "pyg_schnet.train.protocols": ("pyg_schnet.experiments.protocols",),
    "pyg_schnet.train.protocols.md17": ("pyg_schnet.experiments.protocols.md17",),
    "pyg_schnet.train.protocols.qm9": ("pyg_schnet.experiments.protocols.qm9",),
    "pyg_schnet.train.protocols.iso17": ("pyg_schnet.experiments.protocols.iso17",),
}


def _warn(old: str) -> None:
    new = MOVED[old][0]
    warnings.warn(
        f"{old} moved to {new} in pyg-schnet 0.3.0; the old import path is removed in 0.5",
        DeprecationWarning,
        stacklevel=4,
    )


def alias(old: str) -> ModuleType:
    """Warn, then make the new module answer for ``old`` (call it from the module at the old path)."""
    _warn(old)
    module = importlib.import_module(MOVED[old][0])
    sys.modules[old] = module
    return module


def forward(old: str) -> Callable[[str], Any]:
    """Warn, then return a module ``__getattr__`` that looks names up in the new modules of ``old``."""
    _warn(old)
    targets = [importlib.import_module(name) for name in MOVED[old]]

    def __getattr__(name: str) -> Any:
        for module in targets:
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r} (it moved: see {MOVED[old]})")

    return __getattr__
