"""File plumbing of the data sets: a read-ahead decompressor.

The atomic writers (temporary file in the same folder, then :func:`os.replace`) and the clean-up of
temporaries left by dead writers live in :mod:`pyg_schnet.io.files`, shared with run folders,
checkpoints and plots, and are re-exported here.
"""

from __future__ import annotations

import io
import queue
import threading
from typing import Any

from pyg_schnet.io.files import (  # noqa: F401  (re-exported for the data sets)
    TMP_MARKER,
    PathLike,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    temporary_path,
)


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
