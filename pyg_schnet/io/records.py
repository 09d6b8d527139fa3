"""Records of files: sha256 digests, and the path/size/sha256 record ``results.json`` keeps of a raw
data file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Union

PathLike = Union[str, os.PathLike]

#: Files larger than this are not hashed for ``results.json`` (hashing would take long).
MAX_HASH_BYTES = 1 << 30


def sha256_file(path: PathLike, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: PathLike) -> Dict[str, Any]:
    """Path (symlinks resolved), size and sha256 of a raw data file (no hash above 1 GiB)."""
    path = Path(path)
    record: Dict[str, Any] = {"path": str(path), "resolved": str(path.resolve())}
    if path.is_file():
        size = path.stat().st_size
        record["bytes"] = size
        if size <= MAX_HASH_BYTES:
            record["sha256"] = sha256_file(path)
        else:
            record["sha256"] = None
    return record
