"""One writer per run folder: a lock file that a second run into the same folder finds, and that a
killed run does not leave blocking.

A run (``pyg-schnet train``, the benchmarks, ``pyg-schnet md``) takes the lock of its output folder
before it writes anything there and releases it when it ends, normally or by an exception. The lock
is the file :data:`LOCK_NAME` in the folder. It records who holds it (:class:`LockHolder`: process id,
host, start time, command line) so that a second run can say which run is writing:

* On POSIX the holder also keeps an exclusive :func:`fcntl.flock` on the file. The kernel drops it
  when the process ends in any way (``kill -9`` included), so a lock file whose flock can be taken
  is stale however it was left: it is taken over with a message naming the dead holder.
* Where ``flock`` does not exist (Windows) or the file system refuses it, the file is created with
  ``O_CREAT | O_EXCL`` and a lock file is stale when its process is not alive on this host (or when
  it cannot be read and is older than :data:`UNREADABLE_STALE_S`). A lock taken on another host is
  never judged stale there: the error names the file to remove once that run is gone.

Used as a context manager (``with RunLock(out):``), a failed block also removes the folder when the
lock created it and nothing was written there. Within one process the lock is re-entrant: a run that
holds its folder may call code that takes the same lock again (e.g. a trainer inside a benchmark run);
the file goes when the outermost holder releases it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from pyg_schnet.io.files import PathLike, process_alive

try:  # POSIX
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]

#: Name of the lock file inside a run folder.
LOCK_NAME = ".run.lock"
#: Age (seconds) after which a lock file that cannot be read (a writer killed while creating it) is
#: stale in the ``O_EXCL`` scheme.
UNREADABLE_STALE_S = 60.0


class RunFolderLocked(RuntimeError):
    """Another run holds the lock of this output folder."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a lock: process id, host name, start time (ISO 8601) and command line."""

    pid: Optional[int]
    host: Optional[str]
    started: Optional[str]
    command: Optional[str] = None

    @classmethod
    def this_process(cls) -> "LockHolder":
        return cls(
            os.getpid(),
            socket.gethostname(),
            _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            " ".join(sys.argv),
        )

    @classmethod
    def parse(cls, text: str) -> Optional["LockHolder"]:
        """The holder recorded in a lock file's ``text``; ``None`` when it is not such a record."""
        try:
            record = json.loads(text)
            pid = record.get("pid")
            return cls(
                int(pid) if pid is not None else None, record.get("host"), record.get("started"), record.get("command")
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def text(self) -> str:
        record: Dict[str, Any] = {"pid": self.pid, "host": self.host, "started": self.started, "command": self.command}
        return json.dumps(record) + "\n"

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def describe(self) -> str:
        """``process 1234 on this host, started 2026-12-03T14:00:00+00:00`` (or ``on host NAME``)."""
        where = "this host" if self.on_this_host else f"host {self.host}"
        return f"process {self.pid} on {where}, started {self.started}"


#: Folders whose lock this process holds: resolved lock path -> the outermost :class:`RunLock`.
_HELD: Dict[Path, "RunLock"] = {}


class RunLock:
    """The lock of run folder ``folder`` (a context manager; :meth:`acquire` / :meth:`release`).

    Args:
        folder: the run's output folder; it is created when missing.
        say: where the takeover of a stale lock is reported (default: print to stderr).
    """

    def __init__(self, folder: PathLike, say=None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._say = say if say is not None else (lambda text: print(text, file=sys.stderr))
        self._fd: Optional[int] = None
        self._depth = 0
        self._outer: Optional[RunLock] = None
        self._created_folder = False

    # ----------------------------------------------------------------------------- public
    @property
    def held(self) -> bool:
        return self._depth > 0

    def acquire(self) -> "RunLock":
        """Take the lock; :class:`RunFolderLocked` naming the folder and the holder when another run
        has it. A stale lock (its process gone) is taken over with a message."""
        if self.held:
            self._depth += 1
            return self
        self._created_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        outer = _HELD.get(key)
        if outer is not None:  # this process already writes there: re-entrant
            outer._depth += 1
            self._outer, self._depth = outer, 1
            return self
        try:
            if _fcntl is None or not self._acquire_flock():
                self._acquire_exclusive()
        except BaseException:
            self._remove_created_folder()
            raise
        self._depth = 1
        _HELD[key] = self
        return self

    def release(self, failed: bool = False) -> None:
        """Give the lock back (the file is removed when the outermost holder releases it). With
        ``failed``, a folder that :meth:`acquire` created and that is still empty is removed too, so
        that a failed run leaves no empty output folder."""
        if not self.held:
            return
        self._depth -= 1
        if self._depth:
            return
        if self._outer is not None:
            outer, self._outer = self._outer, None
            outer.release()
            return
        _HELD.pop(self.path.resolve(), None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still holding the flock: no one can take the old file meanwhile
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None
        if failed:
            self._remove_created_folder()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.release(failed=exc_type is not None)

    # ---------------------------------------------------------------------------- private
    def _remove_created_folder(self) -> None:
        if self._created_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty

    def _locked_error(self, holder: Optional[LockHolder]) -> RunFolderLocked:
        who = holder.describe() if holder is not None else "another process (its record is not written yet)"
        remote = holder is not None and not holder.on_this_host
        return RunFolderLocked(
            f"{self.folder} is being written by another run ({who}): one run per output folder. Wait for it, "
            "stop it, or choose another --out"
            + (f"; if that run is gone, remove {self.path}" if remote else f" (lock file {self.path})")
        )

    def _took_over(self, holder: Optional[LockHolder]) -> None:
        if holder is not None and holder.pid == os.getpid() and holder.on_this_host:
            return  # this process's own leftover (e.g. a lock released by a fork)
        who = holder.describe() if holder is not None else "an unreadable record"
        self._say(f"took over the lock of {self.folder} left by {who}, which is no longer running")

    def _acquire_flock(self) -> bool:
        """The POSIX scheme; ``False`` when the file system does not support flock."""
        assert _fcntl is not None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            except BlockingIOError:
                holder = LockHolder.parse(_read_fd(fd))
                os.close(fd)
                raise self._locked_error(holder) from None
            except OSError:  # e.g. ENOLCK / ENOSYS on a file system without flock
                os.close(fd)
                return False
            try:  # the file we locked must still be the one under the name (not one a releaser unlinked)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_fd(fd)
            if previous:
                self._took_over(LockHolder.parse(previous))
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, LockHolder.this_process().text().encode("utf-8"))
            os.fsync(fd)
            self._fd = fd
            return True

    def _acquire_exclusive(self) -> None:
        """The ``O_CREAT | O_EXCL`` scheme (no flock): create the file, or judge the one there."""
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    text = self.path.read_text(encoding="utf-8")
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                holder = LockHolder.parse(text)
                if not _is_stale(holder, age):
                    raise self._locked_error(holder) from None
                self._took_over(holder)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            try:
                os.write(fd, LockHolder.this_process().text().encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        raise self._locked_error(LockHolder.parse(_read_text(self.path)))


def _is_stale(holder: Optional[LockHolder], age_s: float) -> bool:
    """Whether a lock file (read as ``holder``, ``age_s`` old) may be taken over without flock."""
    if holder is None or holder.pid is None:
        return age_s > UNREADABLE_STALE_S
    if not holder.on_this_host:
        return False  # its process cannot be looked up from here
    return holder.pid == os.getpid() or not process_alive(holder.pid)


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""
