"""Checkpoints and saved models: atomic writes, ``weights_only=True`` reads.

Everything written here holds only tensors, dicts, lists, tuples, numbers, strings, booleans and
``None``, so :func:`torch.load` reads it with ``weights_only=True`` (no arbitrary code runs when a
file is opened). Files are written to a temporary file in the same folder and moved into place with
:func:`os.replace`, so a killed process leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch
from torch import nn

from .._atomic import atomic_torch_save, atomic_write  # noqa: F401  (re-exported: the trainer writes through these)

PathLike = Union[str, os.PathLike]

#: Format tag of a saved model file (``model.pt``).
MODEL_FORMAT = "pyg_schnet.model/1"
#: Format tag of a training checkpoint (``checkpoint.pt``).
CHECKPOINT_FORMAT = "pyg_schnet.checkpoint/1"


def safe_load(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that is not weights-only
        raise ValueError(f"{path}: cannot be read as a weights-only torch file ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    return obj


# ----------------------------------------------------------------------------------------- models
def model_payload(model: nn.Module) -> Dict[str, Any]:
    """``{'format', 'config', 'state_dict'}`` of a :class:`pyg_schnet.SchNet`, tensors on the CPU."""
    return {
        "format": MODEL_FORMAT,
        "config": dict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def save_model(model: nn.Module, path: PathLike) -> Path:
    """Writes ``model`` (its constructor config and ``state_dict``) atomically to ``path``."""
    return atomic_torch_save(model_payload(model), path)


def load_model(path: PathLike, map_location: Union[str, torch.device] = "cpu"):
    """A ready :class:`pyg_schnet.SchNet` in eval mode from a ``model.pt`` written by :func:`save_model`.

    The standardisation (``mean``, ``std``, ``atomref``) travels in the ``state_dict``, so the
    returned model predicts energies in the units it was trained in (kcal/mol in our benchmarks).
    """
    from pyg_schnet import SchNet  # late import: the model package imports nothing from here

    obj = safe_load(path, map_location)
    for key in ("config", "state_dict"):
        if key not in obj:
            raise ValueError(f"{path}: missing field {key!r}; is this a model.pt written by save_model?")
    if not isinstance(obj["config"], dict):
        raise ValueError(f"{path}: field 'config' must be a dict, got {type(obj['config']).__name__}")
    try:
        model = SchNet(**obj["config"])
    except TypeError as exc:
        raise ValueError(f"{path}: field 'config' does not fit SchNet: {exc}") from exc
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: field 'state_dict' does not fit the model of its config: {exc}") from exc
    return model.to(map_location).eval()


# ------------------------------------------------------------------------------------ RNG states
def rng_state(loader_generator: Optional[torch.Generator] = None) -> Dict[str, Any]:
    """The random states of torch (CPU and CUDA), numpy, Python and the data loader's generator,
    as tensors, lists and numbers only (so a weights-only load reads them)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_state[0]), "state": list(py_state[1]), "gauss": py_state[2]},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": loader_generator.get_state() if loader_generator is not None else None,
    }
    return state


def set_rng_state(state: Dict[str, Any], loader_generator: Optional[torch.Generator] = None) -> None:
    """Restores what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].cpu().numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"].cpu())


def seed_everything(seed: int) -> None:
    """Seeds Python's, numpy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
