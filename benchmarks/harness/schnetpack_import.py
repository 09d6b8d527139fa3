"""Import SchNetPack for the peer benchmarks, with the one shim that torch 2.13 needs.

SchNetPack is not a dependency of pyg-schnet: the peer benchmarks run it from a side environment
(docs/benchmarks.md, "SchNetPack side environment"). Its 2.1 release and its source tree import
``T_co`` from ``torch.utils.data.dataloader``, which newer torch releases removed; when that is the
only problem, :func:`import_schnetpack` defines the name (a covariant ``TypeVar``, what it used to be)
before importing, and returns a note saying so.
"""

from __future__ import annotations

import sys
import typing
import warnings
from types import ModuleType
from typing import Optional, Tuple

import torch

_NOTE: Optional[str] = None


def import_schnetpack() -> Tuple[ModuleType, Optional[str]]:
    """``(schnetpack, note)``; raises :class:`ImportError` with the reason when it cannot be imported."""
    global _NOTE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import schnetpack

            return schnetpack, _NOTE
        except ImportError as exc:
            if "T_co" not in str(exc):
                raise
            import torch.utils.data.dataloader as dataloader

            dataloader.T_co = typing.TypeVar("T_co", covariant=True)  # type: ignore[attr-defined]
            for name in [m for m in sys.modules if m == "schnetpack" or m.startswith("schnetpack.")]:
                del sys.modules[name]
            import schnetpack

            _NOTE = (
                f"schnetpack {schnetpack.__version__} imports torch.utils.data.dataloader.T_co, which "
                f"torch {torch.__version__} no longer has; the benchmark defined it before importing"
            )
            return schnetpack, _NOTE


def schnetpack_note() -> Optional[str]:
    """The note of the last successful import (``None`` when no shim was needed)."""
    return _NOTE
