"""Model and checkpoint files: atomic writes, ``weights_only=True`` reads, checksums, units.

Everything written here holds only tensors, dicts, lists, tuples, numbers, strings, booleans and
``None``, so :func:`torch.load` reads it with ``weights_only=True`` (no arbitrary code runs when a
file is opened). Files are written to a temporary file in the same folder and moved into place with
:func:`os.replace`, so a killed process leaves either the old file or the new one, never half of one.

**Checksums.** A file of a format of :data:`SEALED_FORMATS` carries a field
``"sha256"``: the hex SHA-256 of :func:`content_digest` over all its other fields, which hashes, in a
canonical order (dict keys sorted), every tensor's dtype, shape and raw bytes (C order, CPU) and every
number, string, boolean and ``None`` (config, units, step counts, history). Loading recomputes it and
refuses a file whose content no longer matches (a flipped byte in a weight changes predictions
without any other sign). Files of the earlier formats ``pyg_schnet.model/1`` and
``pyg_schnet.checkpoint/1`` have no checksum and still load; a checksum present in a file is verified
whatever its format tag says (editing the tag to ``/1`` does not switch verification off).

**Units.** A saved model records ``"units": {"energy": <name>, "length": "Angstrom"}`` (names as in
:mod:`ase.units`: ``"kcal/mol"``, ``"eV"``, ``"kJ/mol"``, ``"Hartree"``), taken from the model's
``units`` attribute; a model without one is refused (:func:`~pyg_schnet.io.units.model_units`), so a
file never records a guess. :func:`load_model` sets ``model.units``. Files without the field (format
/1) load with ``model.units = None``: whoever uses them says the unit (``SchNetCalculator(...,
energy_unit=...)``, ``pyg-schnet evaluate --energy-unit``).

**Training domain.** Format /3 adds ``"training_domain"``: the elements, size, closest pair and
per-atom energy range of the training set (:class:`~pyg_schnet.models.domain.TrainingDomain`,
recorded by the trainer as ``model.training_domain``; ``None`` for a model that was not trained by
it). :func:`load_model` sets ``model.training_domain``; files of formats /1 and /2 load with
``None`` (domain unknown: nothing is checked).

**Not a model file.** A file written by ``torch.save(model)`` (a pickled module, not a dict) is never
unpickled: :func:`safe_load` reads its pickle's global names without running it and says how to save
a model properly (:func:`save_model`). A full disk (or any :class:`OSError`) while writing a model or
checkpoint raises an error naming the file, and leaves the previous file (or none), never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import numbers
import os
import pickletools
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from pyg_schnet.io.files import atomic_torch_save
from pyg_schnet.io.units import check_units, model_units
from pyg_schnet.models.domain import TrainingDomain
from pyg_schnet.models.schnet import SchNet

PathLike = Union[str, os.PathLike]

#: Format tag of a saved model file (``model.pt``) written now: with ``units``, ``training_domain`` and
#: ``sha256``.
MODEL_FORMAT = "pyg_schnet.model/3"
#: Model formats :func:`load_model` reads; ``/1`` (``format``, ``config``, ``state_dict`` only) has no
#: checksum and no units, ``/2`` no ``training_domain``.
MODEL_FORMATS = ("pyg_schnet.model/1", "pyg_schnet.model/2", MODEL_FORMAT)
#: Format tag of a training checkpoint (``checkpoint.pt``) written now: with ``sha256``.
CHECKPOINT_FORMAT = "pyg_schnet.checkpoint/2"
#: Checkpoint formats a resume reads; ``/1`` has no checksum.
CHECKPOINT_FORMATS = ("pyg_schnet.checkpoint/1", CHECKPOINT_FORMAT)
#: Formats whose files must carry a checksum.
SEALED_FORMATS = ("pyg_schnet.model/2", MODEL_FORMAT, CHECKPOINT_FORMAT)
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
        pickled = _pickled_object_message(path)
        if pickled:
            raise ValueError(pickled) from exc
        raise ValueError(f"{path}: cannot be read as a weights-only torch file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    return obj


#: Modules whose classes are torch modules (the top-level class of a ``torch.save(model)`` file).
_MODULE_PREFIXES = ("pyg_schnet.", "torch.nn.", "torch.optim.swa_utils", "schnetpack.", "torch_geometric.nn.")


def _pickle_bytes(path: Path) -> Optional[bytes]:
    """The pickle of a torch file: the ``data.pkl`` member of a zip file, or the whole legacy file."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return archive.read(names[0]) if names else None
        return path.read_bytes()
    except (OSError, zipfile.BadZipFile, KeyError):
        return None


def pickled_globals(path: PathLike) -> List[str]:
    """The ``module.name`` globals a torch file's pickle refers to, in order, read with
    :mod:`pickletools` (the pickle is parsed, never run)."""
    data = _pickle_bytes(Path(path))
    names: List[str] = []
    if not data:
        return names
    strings: List[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                names.append(arg.replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str) and ("UNICODE" in opcode.name or "STRING" in opcode.name):
                strings.append(str(arg))
    except Exception:  # noqa: BLE001 - a damaged pickle: keep what was read
        pass
    return names


def _pickled_object_message(path: Path) -> str:
    """Why a torch file that a weights-only load refused is not loaded, when its pickle holds a Python
    object (``''`` when it does not look like one)."""
    names = pickled_globals(path)
    unsafe = [n for n in names if not (n.startswith("torch._utils.") or n.startswith("collections.OrderedDict"))]
    if not unsafe:
        return ""
    top = names[0]
    how = (
        "Save a model with pyg_schnet.save_model(model, path) (config, weights and units as plain tensors, "
        "read without unpickling code); to convert a file you trust, load it in your own code with "
        "torch.load(path, weights_only=False) and pass the model to save_model"
    )
    if top.startswith(_MODULE_PREFIXES):
        return (
            f"{path}: holds a pickled module ({top}, as torch.save(model) writes it), not a model file of "
            f"save_model; unpickling it could run arbitrary code, so it is not loaded. {how}"
        )
    return (
        f"{path}: holds pickled Python objects ({', '.join(dict.fromkeys(unsafe))}) that a weights-only load "
        f"refuses; unpickling them could run arbitrary code, so the file is not loaded. {how}"
    )


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
    :data:`SEALED_FORMATS` and for any file that carries a :data:`CHECKSUM_FIELD`, that its checksum
    matches its content; return ``obj``.

    Raises:
        ValueError: unknown format, missing checksum, or content that does not match its checksum
            (naming the file).
    """
    fmt = obj.get("format")
    if fmt not in formats:
        raise ValueError(f"{path}: field 'format' is {fmt!r}, expected one of {list(formats)}; is this a {what}?")
    if fmt in SEALED_FORMATS or CHECKSUM_FIELD in obj:  # a checksum present is verified whatever the tag says
        stored = obj.get(CHECKSUM_FIELD)
        if not isinstance(stored, str):
            if fmt not in SEALED_FORMATS:
                raise ValueError(f"{path}: field {CHECKSUM_FIELD!r} is {stored!r}, not a checksum; the file is damaged")
            raise ValueError(
                f"{path}: format {fmt} needs a {CHECKSUM_FIELD!r} checksum field, but it has none; the file is damaged"
            )
        try:
            actual = content_digest(obj)
        except TypeError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        if actual != stored:
            edited = (
                f" (its format tag {fmt!r} is of a format written without a checksum: was the tag edited?)"
                if fmt not in SEALED_FORMATS
                else ""
            )
            raise ValueError(
                f"{path}: checksum mismatch: the content no longer matches the {CHECKSUM_FIELD} stored in "
                f"the file{edited}; the file is corrupt (e.g. a damaged disk or an incomplete copy)"
            )
    return obj


def load_verified(
    path: PathLike, formats: Sequence[str], map_location: Union[str, torch.device] = "cpu", what: str = "file"
) -> Dict[str, Any]:
    """:func:`safe_load` then :func:`verify_format`."""
    return verify_format(path, safe_load(path, map_location), formats, what)


# ----------------------------------------------------------------------------------------- models
def model_payload(model: SchNet) -> Dict[str, Any]:
    """``{'format', 'config', 'state_dict', 'units', 'training_domain', 'sha256'}`` of a
    :class:`pyg_schnet.SchNet`, tensors on the CPU."""
    domain: Optional[TrainingDomain] = getattr(model, "training_domain", None)
    return seal(
        {
            "format": MODEL_FORMAT,
            "config": dict(model.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "units": model_units(model),
            "training_domain": domain.as_dict() if domain is not None else None,
        }
    )


def write_payload(payload: Mapping[str, Any], path: PathLike, what: str = "file") -> Path:
    """:func:`~pyg_schnet.io.files.atomic_torch_save` of ``payload`` to ``path``, with an :class:`OSError`
    (a full disk, a read-only folder) re-raised naming the file and the ``what`` it was to hold.

    Nothing half-written stays behind: the temporary file is removed and ``path`` keeps its previous
    content (or stays absent).
    """
    try:
        return atomic_torch_save(payload, path)
    except OSError as exc:
        reason = "the disk is full (no space left on device)" if exc.errno == errno.ENOSPC else exc.strerror or exc
        raise OSError(
            exc.errno,
            f"{path}: cannot write the {what}: {reason}; nothing was written under this name "
            "(a previous file there, if any, is unchanged)",
        ) from exc


def save_model(model: SchNet, path: PathLike) -> Path:
    """Writes ``model`` (its constructor config, ``state_dict``, units, training domain and checksum)
    atomically to ``path``."""
    return write_payload(model_payload(model), path, "model")


def load_model(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> SchNet:
    """A ready :class:`pyg_schnet.SchNet` in eval mode from a ``model.pt`` written by :func:`save_model`
    (any format of :data:`MODEL_FORMATS`; a checksum is verified wherever the file carries one).

    The standardisation (``mean``, ``std``, ``atomref``) travels in the ``state_dict``, so the
    returned model predicts energies in the units it was trained in, recorded as ``model.units``
    (``None`` for files of format /1, which do not say), and knows its training set as
    ``model.training_domain`` (``None`` for formats /1 and /2: domain unknown).
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
    record = obj.get("training_domain")
    domain = TrainingDomain.from_dict(record, f"{path}: field 'training_domain'") if record is not None else None
    try:
        model = SchNet(**obj["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: field 'config' does not fit SchNet: {exc}") from exc
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: field 'state_dict' does not fit the model of its config: {exc}") from exc
    model.units = units
    model.training_domain = domain
    return model.to(map_location).eval()
