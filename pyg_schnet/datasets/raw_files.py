"""Raw data files placed by link: ``ROOT/raw/<name>`` pointing at a file elsewhere (e.g. a read-only
shared copy), so a data set class finds it without a copy."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional


def link_raw_file(source: os.PathLike | str, root: os.PathLike | str, name: str) -> Path:
    """Makes ``ROOT/raw/<name>`` a symbolic link to ``source`` (a data file outside the root, e.g. a
    read-only shared copy), so a data set class finds it without a copy. An existing different file
    at that place is an error. Prefer :func:`raw_file_link`, which removes the link again when the
    data set cannot be opened."""
    return _link(source, root, name)[0]


def _link(source: os.PathLike | str, root: os.PathLike | str, name: str) -> tuple:
    """``(target, created)``: the link, and whether this call created it."""
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
