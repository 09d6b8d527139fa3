"""tests/test_md.py's smooth NVE model and energy bound, for the engine tests beside it (OpenMM,
TorchSim): one definition, so every engine's NVE test holds the model and bound of the ASE test."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _load_test_md() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "test_md.py"
    spec = importlib.util.spec_from_file_location("test_md_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TEST_MD = _load_test_md()
#: the largest total-energy deviation (eV) tests/test_md.py allows a smooth model's NVE run
NVE_BOUND_EV: float = _TEST_MD.NVE_BOUND_EV
#: tests/test_md.py's smooth model: a cosine cutoff at 3 A, many pairs near it in ethanol
smooth_model = _TEST_MD.smooth_model
