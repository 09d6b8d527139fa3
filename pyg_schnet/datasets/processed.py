"""The processed file of a data set: tensors only, and a record of what it was built from.

PyG's :class:`~torch_geometric.data.InMemoryDataset` keeps ``processed/pre_transform.pt`` and
``pre_filter.pt`` beside its processed file and unpickles them (``weights_only=False``) every time a
data set is opened, so a pickle planted in a shared or downloaded data folder runs arbitrary code; it
also writes them non-atomically. :class:`~pyg_schnet.datasets.base.AtomsDataset` never reads nor
writes those two files. Its one processed file holds::

    {"format": "pyg_schnet.processed/1",
     "record": {"dataset": "MD17", "variant": "md17_ethanol", "format_version": 2,
                "pre_transform": "<description>", "pre_filter": "<description>",
                "raw_files": [{"name": "md17_ethanol.npz", "size": 123, "mtime_ns": 456,
                               "sha256": "..."}],
                "summary": {"num_molecules": 1500, ...}},
     "data": {"z": Tensor, "pos": Tensor, ...}, "slices": {"z": Tensor, ...}}

It is written atomically (:func:`pyg_schnet.io.files.atomic_torch_save`) and read with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never code.
Anything else (a planted pickle, PyG's own layout, a truncated file) is a
:class:`~.errors.ProcessedFileError` and the data set is rebuilt from its raw files.

On every open the record is compared with the present (:func:`stale_reason`): another data set
variant or layout version, another ``pre_transform`` / ``pre_filter`` description
(:func:`describe`), or a raw file whose size changed, or whose modification time changed and whose
sha256 then differs, makes the file stale and the data set is rebuilt with a message saying why.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import re
import types
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from pyg_schnet.datasets.errors import ProcessedFileError
from pyg_schnet.io.files import atomic_torch_save
from pyg_schnet.io.records import sha256_file

PathLike = Union[str, "os.PathLike[str]"]

#: The ``format`` tag of processed files written by :func:`save_processed`.
PROCESSED_FORMAT = "pyg_schnet.processed/1"
#: Record keys that must equal the present ones for a processed file to be used (besides raw files).
IDENTITY_KEYS: Tuple[str, ...] = ("dataset", "variant", "format_version")
TRANSFORM_KEYS: Tuple[str, ...] = ("pre_transform", "pre_filter")

_ADDRESS = re.compile(r"\s+at\s+0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
_MAX_DESCRIPTION = 4000


# ----------------------------------------------------------------------------------------------
# Raw files
# ----------------------------------------------------------------------------------------------
def raw_file_record(name: str, path: PathLike) -> Dict[str, Any]:
    """``{"name", "size", "mtime_ns", "sha256"}`` of one raw file (symlinks followed)."""
    stat = os.stat(path)
    return {"name": name, "size": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns), "sha256": sha256_file(path)}


# ----------------------------------------------------------------------------------------------
# pre_transform / pre_filter descriptions
# ----------------------------------------------------------------------------------------------
def describe(obj: Any) -> str:
    """A text that changes when a ``pre_transform`` / ``pre_filter`` does (as far as can be told).

    * ``None`` -> ``"None"``;
    * a function -> its module and qualified name plus a hash of its bytecode, constants, names,
      default arguments and the values it closes over (line numbers and file names excluded);
      a bound method adds its instance's description, a :func:`functools.partial` its arguments;
    * any other object -> its ``repr`` with memory addresses removed; an object without its own
      ``repr`` is described by its class and attributes (``vars``).

    Not seen: module-level globals a function reads, and state a ``repr`` does not show. Pass
    ``force_reload=True`` after changing those.
    """
    text = _describe(obj, depth=0)
    if len(text) > _MAX_DESCRIPTION:
        text = text[:200] + f"... [{len(text)} characters, sha256 {hashlib.sha256(text.encode()).hexdigest()}]"
    return text


def _describe(obj: Any, depth: int) -> str:
    if obj is None:
        return "None"
    if depth > 4:
        return _qualified(obj)
    if isinstance(obj, functools.partial):
        return (
            f"functools.partial({_describe(obj.func, depth + 1)}, args={_value(obj.args, depth)}, "
            f"keywords={_value(obj.keywords, depth)})"
        )
    if inspect.ismethod(obj):
        return f"method {_describe(obj.__func__, depth + 1)} of {_describe(obj.__self__, depth + 1)}"
    if isinstance(obj, types.FunctionType):
        return f"function {obj.__module__}.{obj.__qualname__} [{_function_fingerprint(obj, depth)}]"
    if isinstance(obj, type) or inspect.isbuiltin(obj):
        return _qualified(obj)
    if type(obj).__repr__ is object.__repr__:  # no repr of its own: class and attributes
        try:
            attributes = vars(obj)
        except TypeError:
            attributes = {}
        return f"{type(obj).__module__}.{type(obj).__qualname__}({_value(attributes, depth)})"
    return _ADDRESS.sub("", repr(obj))


def _qualified(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or type(obj).__module__
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def _value(value: Any, depth: int) -> str:
    if callable(value) and not isinstance(value, type):
        return _describe(value, depth + 1)
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{k!r}: {_value(v, depth + 1)}" for k, v in sorted(value.items(), key=lambda kv: repr(kv[0])))
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, depth + 1) for v in value) + "]"
    return _ADDRESS.sub("", repr(value))


def _code_fingerprint(code: types.CodeType, digest: "hashlib._Hash") -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    digest.update(repr(code.co_varnames).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_fingerprint(const, digest)
        else:
            digest.update(repr(const).encode())


def _function_fingerprint(func: types.FunctionType, depth: int) -> str:
    digest = hashlib.sha256()
    _code_fingerprint(func.__code__, digest)
    digest.update(_value(func.__defaults__, depth).encode())
    digest.update(_value(func.__kwdefaults__, depth).encode())
    for cell in func.__closure__ or ():
        try:
            content = cell.cell_contents
        except ValueError:  # an empty cell
            digest.update(b"<empty cell>")
            continue
        digest.update(_value(content, depth + 1).encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Staleness
# ----------------------------------------------------------------------------------------------
def _short(text: Any, width: int = 120) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def stale_reason(
    stored: Mapping[str, Any], wanted: Mapping[str, Any], raw_files: Sequence[Tuple[str, PathLike]]
) -> Optional[str]:
    """Why a processed file built with record ``stored`` must not be used now, or ``None``.

    ``wanted`` holds the present values of :data:`IDENTITY_KEYS` and :data:`TRANSFORM_KEYS`;
    ``raw_files`` the present ``(name, path)`` of each raw file. A raw file counts as unchanged when
    its size and modification time equal the recorded ones, or when its size does and its sha256
    (computed only then) equals the recorded one.
    """
    for key in IDENTITY_KEYS:
        if stored.get(key) != wanted[key]:
            return f"it was built for {key} {stored.get(key)!r}, not {wanted[key]!r}"
    for key in TRANSFORM_KEYS:
        if stored.get(key) != wanted[key]:
            return (
                f"the {key} differs from the one it was built with "
                f"(built with {_short(stored.get(key))}; now {_short(wanted[key])})"
            )
    entries = stored["raw_files"]
    names = [entry["name"] for entry in entries]
    if names != [name for name, _ in raw_files]:
        return f"it was built from the raw files {names}, not {[name for name, _ in raw_files]}"
    for entry, (_, path) in zip(entries, raw_files):
        stat = os.stat(path)
        if stat.st_size != entry["size"]:
            return (
                f"the raw file {os.fspath(path)} changed since it was processed "
                f"(size {entry['size']} -> {stat.st_size} bytes)"
            )
        if stat.st_mtime_ns != entry["mtime_ns"]:
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                return (
                    f"the raw file {os.fspath(path)} changed since it was processed "
                    f"(same size, sha256 {entry['sha256'][:12]}... -> {digest[:12]}...)"
                )
    return None


# ----------------------------------------------------------------------------------------------
# The file
# ----------------------------------------------------------------------------------------------
@dataclass
class ProcessedContent:
    """What a processed file holds: collated fields, their slices and the build record."""

    data: Dict[str, Any]
    slices: Dict[str, Tensor]
    record: Dict[str, Any]


def save_processed(
    path: PathLike, data: Mapping[str, Any], slices: Mapping[str, Tensor], record: Mapping[str, Any]
) -> None:
    """Write a processed file atomically (see the module docstring for the layout)."""
    atomic_torch_save(
        {"format": PROCESSED_FORMAT, "record": dict(record), "data": dict(data), "slices": dict(slices)}, path
    )


def load_processed(path: PathLike) -> ProcessedContent:
    """Read a processed file with ``torch.load(weights_only=True)`` and check its layout.

    Raises:
        ProcessedFileError: naming the file, when it is not tensors-only (a pickle of code), not
            in :data:`PROCESSED_FORMAT` (e.g. written by PyG or an earlier version) or unreadable.
    """
    path = os.fspath(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for code, RuntimeError/EOFError for damaged files
        text = str(exc)
        if "weights only" in text.lower() or "weightsunpickler" in text.lower():
            found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
            what = f"it asks for {found.group(1)}" if found else _short(_first_line(text), 160)
            raise ProcessedFileError(f"{path} is not a tensors-only file and was not unpickled ({what})") from None
        raise ProcessedFileError(
            f"{path} is unreadable ({type(exc).__name__}: {_short(_first_line(text), 160)})"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != PROCESSED_FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ProcessedFileError(f"{path} is not a {PROCESSED_FORMAT} file (found {found!r}; an earlier layout)")
    data, slices, record = obj.get("data"), obj.get("slices"), obj.get("record")
    if not (isinstance(data, dict) and isinstance(slices, dict) and isinstance(record, dict)):
        raise ProcessedFileError(f"{path}: 'data', 'slices' and 'record' must be dictionaries")
    if not all(isinstance(v, Tensor) for v in slices.values()) or set(slices) - set(data):
        raise ProcessedFileError(f"{path}: 'slices' must hold one tensor per field of 'data'")
    raw = record.get("raw_files")
    if not isinstance(raw, list) or not all(_valid_raw_entry(e) for e in raw):
        raise ProcessedFileError(f"{path}: the record lacks a valid list of raw files (name, size, mtime_ns, sha256)")
    return ProcessedContent(data=data, slices=slices, record=record)


def _first_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    return text.splitlines()[0] if text else ""


def _valid_raw_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("mtime_ns"), int)
        and isinstance(entry.get("sha256"), str)
    )


def raw_records(raw_files: Sequence[Tuple[str, PathLike]]) -> List[Dict[str, Any]]:
    """:func:`raw_file_record` of each ``(name, path)``."""
    return [raw_file_record(name, path) for name, path in raw_files]
