"""Model and checkpoint files: atomic writes, ``weights_only=True`` reads, checksums, units.

Everything written here holds only tensors, dicts, lists, tuples, numbers, strings, booleans and
``None``, so :func:`torch.load` reads it with ``weights_only=True`` (no arbitrary code runs when a
file is opened). Files are written to a temporary file in the same folder and moved into place with
:func:`os.replace`, so a killed process leaves either the old file or the new one, never half of one.

**Checksums.** A file of format :data:`MODEL_FORMAT` or :data:`CHECKPOINT_FORMAT` carries a field
``"sha256"``: the hex SHA-256 of :func:`content_digest` over all its other fields, which hashes, in a
canonical order (dict keys sorted), every tensor's dtype, shape and raw bytes (C order, CPU) and every
number, string, boolean and ``None`` (config, units, step counts, history). Loading recomputes it and
refuses a file whose content no longer matches (a flipped byte in a weight changes predictions
without any other sign). Files of the earlier formats ``pyg_schnet.model/1`` and
``pyg_schnet.checkpoint/1`` have no checksum and still load.

**Units.** A saved model records ``"units": {"energy": <name>, "length": "Angstrom"}`` (names as in
:mod:`ase.units`: ``"kcal/mol"``, ``"eV"``, ``"kJ/mol"``, ``"Hartree"``), taken from the model's
``units`` attribute; a model without one is refused (:func:`~pyg_schnet.io.units.model_units`), so a
file never records a guess. :func:`load_model` sets ``model.units``. Files without the field (format
/1) load with ``model.units = None``: whoever uses them says the unit (``SchNetCalculator(...,
energy_unit=...)``, ``pyg-schnet evaluate --energy-unit``).
"""

from __future__ import annotations

import hashlib
import numbers
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

import torch
from torch import Tensor

from pyg_schnet.io.files import atomic_torch_save
from pyg_schnet.io.units import check_units, model_units
from pyg_schnet.models.schnet import SchNet

PathLike = Union[str, os.PathLike]

#: Format tag of a saved model file (``model.pt``) written now: with ``units`` and ``sha256``.
MODEL_FORMAT = "pyg_schnet.model/2"
#: Model formats :func:`load_model` reads; ``/1`` (``format``, ``config``, ``state_dict`` only) has no
#: checksum and no units.
MODEL_FORMATS = ("pyg_schnet.model/1", MODEL_FORMAT)
#: Format tag of a training checkpoint (``checkpoint.pt``) written now: with ``sha256``.
CHECKPOINT_FORMAT = "pyg_schnet.checkpoint/2"
#: Checkpoint formats a resume reads; ``/1`` has no checksum.
CHECKPOINT_FORMATS = ("pyg_schnet.checkpoint/1", CHECKPOINT_FORMAT)
#: Formats whose files must carry a checksum.
SEALED_FORMATS = (MODEL_FORMAT, CHECKPOINT_FORMAT)
#: Field holding the checksum.
CHECKSUM_FIELD = "sha256"


def safe_load(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file (and say when it is
    empty or not a torch file at all)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise ValueError(f"{path}: the file is empty (0 bytes); it holds no model or checkpoint")
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # zip (torch >= 1.6) or legacy pickle
        raise ValueError(
            f"{path}: not a file written by torch.save (it starts with {head[:12]!r}); "
            "is it a text file or another format?"
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that is not weights-only
        raise ValueError(f"{path}: cannot be read as a weights-only torch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    return obj


# -------------------------------------------------------------------------------------- checksums
def _feed(digest: "hashlib._Hash", obj: Any, where: str) -> None:
    if isinstance(obj, Tensor):
        flat = obj.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{flat.dtype}{tuple(obj.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, Mapping):
        keys = sorted(obj, key=lambda k: (type(k).__name__, str(k)))
        digest.update(f"D{len(keys)};".encode())
        for key in keys:
            _feed(digest, key, where)
            _feed(digest, obj[key], f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        digest.update(f"L{len(obj)};".encode())
        for i, item in enumerate(obj):
            _feed(digest, item, f"{where}[{i}]")
    elif obj is None:
        digest.update(b"N;")
    elif isinstance(obj, bool):
        digest.update(b"B1;" if obj else b"B0;")
    elif isinstance(obj, numbers.Integral):
        digest.update(f"I{int(obj)};".encode())
    elif isinstance(obj, numbers.Real):
        digest.update(f"F{float(obj).hex()};".encode())
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        digest.update(f"S{len(data)};".encode() + data)
    elif isinstance(obj, bytes):
        digest.update(f"Y{len(obj)};".encode() + obj)
    else:
        raise TypeError(f"cannot checksum {where}: unsupported type {type(obj).__name__}")


def content_digest(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of ``payload`` without its :data:`CHECKSUM_FIELD`, in the canonical encoding of
    the module docstring (independent of the device tensors live on and of dict insertion order)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in payload.items() if k != CHECKSUM_FIELD}, "payload")
    return digest.hexdigest()


def seal(payload: Mapping[str, Any]) -> Dict[str, Any]:
    """``payload`` plus its checksum field (see :func:`content_digest`)."""
    return {**payload, CHECKSUM_FIELD: content_digest(payload)}


def verify_format(path: PathLike, obj: Dict[str, Any], formats: Sequence[str], what: str = "file") -> Dict[str, Any]:
    """Check that the loaded ``obj`` has a ``format`` of ``formats`` and, for the formats of
    :data:`SEALED_FORMATS`, that its checksum matches its content; return ``obj``.

    Raises:
        ValueError: unknown format, missing checksum, or content that does not match its checksum
            (naming the file).
    """
    fmt = obj.get("format")
    if fmt not in formats:
        raise ValueError(f"{path}: field 'format' is {fmt!r}, expected one of {list(formats)}; is this a {what}?")
    if fmt in SEALED_FORMATS:
        stored = obj.get(CHECKSUM_FIELD)
        if not isinstance(stored, str):
            raise ValueError(
                f"{path}: format {fmt} needs a {CHECKSUM_FIELD!r} checksum field, but it has none; the file is damaged"
            )
        try:
            actual = content_digest(obj)
        except TypeError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if actual != stored:
            raise ValueError(
                f"{path}: checksum mismatch: the content no longer matches the {CHECKSUM_FIELD} stored in "
                "the file; the file is corrupt (e.g. a damaged disk or an incomplete copy)"
            )
    return obj


def load_verified(
    path: PathLike, formats: Sequence[str], map_location: Union[str, torch.device] = "cpu", what: str = "file"
) -> Dict[str, Any]:
    """:func:`safe_load` then :func:`verify_format`."""
    return verify_format(path, safe_load(path, map_location), formats, what)


# ----------------------------------------------------------------------------------------- models
def model_payload(model: SchNet) -> Dict[str, Any]:
    """``{'format', 'config', 'state_dict', 'units', 'sha256'}`` of a :class:`pyg_schnet.SchNet`,
    tensors on the CPU."""
    return seal(
        {
            "format": MODEL_FORMAT,
            "config": dict(model.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "units": model_units(model),
        }
    )


def save_model(model: SchNet, path: PathLike) -> Path:
    """Writes ``model`` (its constructor config, ``state_dict``, units and checksum) atomically to ``path``."""
    return atomic_torch_save(model_payload(model), path)


def load_model(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> SchNet:
    """A ready :class:`pyg_schnet.SchNet` in eval mode from a ``model.pt`` written by :func:`save_model`
    (any format of :data:`MODEL_FORMATS`; the checksum of format /2 is verified).

    The standardisation (``mean``, ``std``, ``atomref``) travels in the ``state_dict``, so the
    returned model predicts energies in the units it was trained in, recorded as ``model.units``
    (``None`` for files of format /1, which do not say).
    """
    obj = safe_load(path, map_location)
    obj.setdefault("format", MODEL_FORMATS[0])  # the earliest files may lack the tag: format /1
    verify_format(path, obj, MODEL_FORMATS, what="model.pt written by save_model")
    for key in ("config", "state_dict"):
        if key not in obj:
            raise ValueError(f"{path}: missing field {key!r}; is this a model.pt written by save_model?")
    if not isinstance(obj["config"], dict):
        raise ValueError(f"{path}: field 'config' must be a dict, got {type(obj['config']).__name__}")
    units = check_units(obj["units"], f"{path}: field 'units'") if "units" in obj else None
    try:
        model = SchNet(**obj["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: field 'config' does not fit SchNet: {exc}") from exc
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: field 'state_dict' does not fit the model of its config: {exc}") from exc
    model.units = units
    return model.to(map_location).eval()
