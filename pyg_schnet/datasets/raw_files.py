"""Raw data files placed by link: ``ROOT/raw/<name>`` pointing at a file elsewhere (e.g. a read-only
shared copy), so a data set class finds it without a copy; and the check that no path of a data set
runs through a symbolic link loop (:func:`check_no_link_loop`)."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator, List, Optional

from pyg_schnet.datasets.errors import SymlinkLoopError


def link_loop(path: os.PathLike | str) -> Optional[str]:
    """The first folder or file on the way to ``path`` (``path`` itself included) that is a symbolic
    link loop, with the loop spelled out (``a -> b -> a``); ``None`` when there is none. A path that
    does not exist is not a loop."""
    current = ""
    for part in Path(os.path.abspath(os.fspath(path))).parts:
        current = os.path.join(current, part) if current else part
        try:
            os.stat(current)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return _spell_loop(current)
            return None
    return None


def _spell_loop(link: str) -> str:
    chain: List[str] = [link]
    seen = {os.path.abspath(link)}
    current = link
    for _ in range(16):
        try:
            target = os.path.join(os.path.dirname(current), os.readlink(current))
        except OSError:  # a loop through a folder further up: the link itself is as far as we can say
            break
        chain.append(os.readlink(current))
        if os.path.abspath(target) in seen:
            break
        seen.add(os.path.abspath(target))
        current = target
    return " -> ".join(chain)


def check_no_link_loop(path: os.PathLike | str, what: str) -> None:
    """Raise :class:`~pyg_schnet.datasets.errors.SymlinkLoopError` (an :class:`OSError`) when ``path``
    runs through a symbolic link loop, naming ``what`` it is (``data root``, ``raw file``) and the loop,
    instead of the bare ``Too many levels of symbolic links`` or ``Symlink loop`` errors."""
    loop = link_loop(path)
    if loop is not None:
        raise SymlinkLoopError(
            errno.ELOOP,
            f"{what} {os.fspath(path)}: the path runs through a symbolic link loop ({loop}); nothing can be "
            "read through it: point the link at a real file or folder, or remove it",
        )


def link_raw_file(source: os.PathLike | str, root: os.PathLike | str, name: str) -> Path:
    """Makes ``ROOT/raw/<name>`` a symbolic link to ``source`` (a data file outside the root, e.g. a
    read-only shared copy), so a data set class finds it without a copy. An existing different file
    at that place is an error. Prefer :func:`raw_file_link`, which removes the link again when the
    data set cannot be opened."""
    return _link(source, root, name)[0]


def _link(source: os.PathLike | str, root: os.PathLike | str, name: str) -> tuple:
    """``(target, created)``: the link, and whether this call created it."""
    check_no_link_loop(source, "data file")
    check_no_link_loop(Path(root) / "raw" / name, "raw file")
    source = Path(source).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such data file")
    target = Path(root) / "raw" / name
    if target.is_symlink() or target.exists():
        if target.resolve() == source:
            return target, False
        raise FileExistsError(f"{target} already exists and is not a link to {source}; use another --root or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target, True


@contextlib.contextmanager
def raw_file_link(source: Optional[os.PathLike | str], root: os.PathLike | str, name: str) -> Iterator[Optional[Path]]:
    """:func:`link_raw_file` for the body of a ``with`` block that opens the data set: when the body
    fails (e.g. ``source`` is not a data file of the expected kind), a link created here is removed,
    so the next run with the right file is not blocked by it. ``source=None`` links nothing."""
    if source is None:
        yield None
        return
    target, created = _link(source, root, name)
    try:
        yield target
    except BaseException:
        if created:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        raise
