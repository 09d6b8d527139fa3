"""Atomic file writes: a file either appears complete under its final name or not at all.

Every writer here writes to a hidden temporary file in the destination's own folder (named with
:data:`TMP_MARKER` and the writing process's id) and moves it into place with :func:`os.replace`,
which is atomic on POSIX and Windows when source and target share a file system. An exception (or an
interrupt) removes the temporary file, so a later run never finds a half-written file under a name it
would trust. Data sets, checkpoints, logs, plots and results (:func:`write_json`) all write through
this module.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List, Mapping, Union

import numpy as np
import torch
from torch import Tensor

PathLike = Union[str, "os.PathLike[str]"]

#: Marker in the names of temporary files; :func:`remove_stale_temporaries` deletes such files.
TMP_MARKER = ".tmp-"


def temporary_path(path: PathLike) -> Path:
    """A hidden sibling of ``path`` for this process, e.g. ``.data.pt.tmp-1234``."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARKER}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success move it to ``path``, on any exception delete it.

    Example::

        with atomic_path("processed/data.pt") as tmp:
            torch.save(obj, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write of {path}: nothing was written to {tmp}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: PathLike, write: Callable[[IO], Any], binary: bool = True) -> Path:
    """Call ``write(handle)`` on a temporary file opened in binary (or UTF-8 text) mode, ``fsync`` it,
    and move it to ``path``; on any error nothing appears under ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_bytes(path: PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(payload))


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """:func:`torch.save` ``obj`` to ``path`` atomically (serialised in memory first)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Delete temporary files that interrupted writers left in ``folder``; return what was removed.

    A temporary file is named ``.<name>.tmp-<pid>`` (:func:`temporary_path`); it is removed unless the
    process ``<pid>`` is another process that is still alive (a writer at work right now). Data set
    folders call this before they process, run folders when training starts.
    """
    folder = Path(folder)
    removed: List[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and TMP_MARKER in entry.name and entry.is_file()):
            continue
        owner = entry.name.rsplit(TMP_MARKER, 1)[1]
        if owner.isdigit() and int(owner) != os.getpid() and process_alive(int(owner)):
            continue  # another live process is writing this file right now
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` may exist (best effort; ``True`` where it cannot be told)."""
    if os.name != "posix":  # signal 0 is not a probe on Windows; keep the file (it is never trusted)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _json_safe(value: Any) -> Any:
    """NaN/inf become null, tensors become lists, paths strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json(obj: Mapping[str, Any], path: PathLike) -> Path:
    """Atomic, pretty JSON (NaN written as null)."""
    text = json.dumps(_json_safe(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def npz_error(path: PathLike, exc: BaseException) -> ValueError:
    """A :class:`ValueError` naming ``path`` for what :func:`numpy.load` raised reading it (an archive
    that is not one, pickled Python objects, an object array inside); ``exc`` itself when it already
    names the file."""
    text = str(exc)
    if isinstance(exc, ValueError) and os.fspath(path) in text:
        return exc
    if "pickle" in text:
        return ValueError(
            f"{os.fspath(path)}: holds pickled Python objects (or is no npz archive, which numpy then reads as a "
            "pickle); these are never loaded, since unpickling can run code: save plain numeric arrays with np.savez"
        )
    return ValueError(f"{os.fspath(path)}: not a readable npz file ({type(exc).__name__}: {text})")


@contextlib.contextmanager
def open_npz(path: PathLike) -> Iterator[Any]:
    """:func:`numpy.load` of an ``.npz`` archive without pickles, as a context manager; whatever numpy
    raises reading the file or an array of it becomes a :class:`ValueError` naming ``path``
    (:func:`npz_error`)."""
    try:
        data = np.load(os.fspath(path), allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise npz_error(path, exc) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{os.fspath(path)}: a single array, not an npz archive of named fields")
    with data:
        try:
            yield data
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise npz_error(path, exc) from exc
