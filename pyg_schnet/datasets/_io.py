"""Atomic file writes: a file either appears complete under its final name or not at all.

Every writer here writes to a hidden temporary file in the destination's own folder and moves it
into place with :func:`os.replace`, which is atomic on POSIX and Windows when source and target
share a file system. An exception (or an interrupt) removes the temporary file, so a later run
never finds a half-written file under a name it would trust.
"""
from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterator, Union

import torch

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


def atomic_write_bytes(path: PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """:func:`torch.save` ``obj`` to ``path`` atomically (serialised in memory first)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Delete temporary files that an interrupted run left in ``folder``; return what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not (entry.name.startswith(".") and TMP_MARKER in entry.name and entry.is_file()):
            continue
        owner = entry.name.rsplit(TMP_MARKER, 1)[1]
        if owner.isdigit() and int(owner) != os.getpid() and _process_alive(int(owner)):
            continue  # another live process is writing this file right now
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
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


class PrefetchReader(io.RawIOBase):
    """Read a file object ahead in a background thread.

    Decompressors (:mod:`bz2`, :mod:`gzip`, :mod:`lzma`) release the GIL while they work, so
    reading a compressed archive through this class lets decompression of the next megabytes run
    on a second core while the caller parses the current ones. Errors raised while reading
    (a truncated or corrupt stream) are re-raised in the caller's thread at the same position.
    """

    def __init__(self, source: Any, chunk_size: int = 1 << 20, depth: int = 8) -> None:
        super().__init__()
        self._source = source
        self._chunk_size = chunk_size
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._chunk = memoryview(b"")
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="pyg-schnet-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._source.read(self._chunk_size)
                self._put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the reading thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._chunk and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
            else:
                self._chunk = memoryview(item)
        n = min(len(buffer), len(self._chunk))
        buffer[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
        super().close()
