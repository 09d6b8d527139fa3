"""Count the host synchronisations a block of code would make on an accelerator, on any machine.

On a GPU the host waits for the device whenever it needs a value computed there: a tensor read as a
Python number (``float(t)``, ``int(t)``, ``bool(t)``, ``t.item()``: ``aten._local_scalar_dense``), a
tensor copied into Python or numpy (``t.tolist()``, ``t.numpy()``), and every operation whose output
*shape* depends on the data (``nonzero``, boolean-mask indexing ``x[mask]``, ``masked_select``,
``unique``, ``bincount``, ``repeat_interleave`` without ``output_size``). On a CPU none of these stalls
anything, so they are counted by what is called, not by what waits: :class:`SyncCounter` is a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` that records those operators, plus patched
``Tensor.tolist`` / ``Tensor.numpy`` (which do not go through the dispatcher). Each record carries the
innermost frame of the caller's code, so a failing test names the line that synchronised.

``host_readers`` names functions that only ever read tensors known to live on the host (PyG's
``Batch._slice_dict``, positions the caller gave as a CPU tensor): what they read is not a device
synchronisation on any machine, so records made inside them are not counted. Each of them checks the
device of what it reads itself (``tests/test_host_syncs.py`` tests that).
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

#: Operators that read a device value on the host, or whose output size depends on device data.
SYNC_OPS: FrozenSet[Any] = frozenset(
    {
        aten._local_scalar_dense.default,
        aten.item.default,
        aten.is_nonzero.default,
        aten.equal.default,
        aten.nonzero.default,
        aten.argwhere.default,
        aten.masked_select.default,
        aten.bincount.default,
        aten._unique.default,
        aten._unique2.default,
        aten.unique_dim.default,
        aten.unique_consecutive.default,
    }
)

#: The code of the package that reads host-resident tensors only (see the module docstring), as
#: ``(file name ending, qualified name or its prefix ending in ".")``: the methods of
#: :class:`pyg_schnet.graph.pairs.HostLayout` (PyG's CPU offsets, CPU positions, tensors they build on
#: the CPU) and the evaluator's checks of CPU positions.
HOST_READERS: FrozenSet[tuple] = frozenset(
    {
        ("pyg_schnet/graph/pairs.py", "HostLayout."),
        ("pyg_schnet/models/md_evaluator.py", "MDEvaluator._host_checks"),
    }
)

_HERE = os.path.abspath(__file__)
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


@dataclass(frozen=True)
class Sync:
    """One synchronisation: what (operator or method) and where (``file:line in function: code``)."""

    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.what} at {self.where}"


def _is_sync(func: Any, args: tuple, kwargs: Dict[str, Any]) -> bool:
    if func in SYNC_OPS:
        return True
    if func is aten.repeat_interleave.Tensor or func is aten.repeat_interleave.self_Tensor:
        return kwargs.get("output_size") is None
    if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default):
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices)
    return False


class SyncCounter(TorchDispatchMode):
    """Records host synchronisations while active (``with SyncCounter() as syncs: ...``).

    ``syncs.records`` lists them (:class:`Sync`), ``len(syncs)`` counts them, ``syncs.report()`` is one
    line per record. ``host_readers``: see the module docstring (default :data:`HOST_READERS`).
    """

    def __init__(self, host_readers: Optional[Iterable[tuple]] = None) -> None:
        super().__init__()
        self.records: List[Sync] = []
        self.host_readers = frozenset(HOST_READERS if host_readers is None else host_readers)
        self._saved: Dict[str, Callable] = {}

    # ------------------------------------------------------------------ recording
    def _host_reader(self, path: str, qualname: str) -> bool:
        for ending, name in self.host_readers:
            if path.endswith(ending) and (qualname == name or (name.endswith(".") and qualname.startswith(name))):
                return True
        return False

    def _where(self) -> Optional[str]:
        """The innermost frame outside torch and this module, or ``None`` inside a host reader."""
        frame = sys._getframe(1)
        where = None
        while frame is not None:
            code = frame.f_code
            path = os.path.abspath(code.co_filename)
            if self._host_reader(path.replace(os.sep, "/"), code.co_qualname):
                return None
            if where is None and path != _HERE and not path.startswith(_TORCH_DIR):
                line = linecache.getline(code.co_filename, frame.f_lineno).strip()
                where = f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}: {line}"
            frame = frame.f_back
        return where or "<unknown>"

    def _record(self, what: str) -> None:
        where = self._where()
        if where is not None:
            self.records.append(Sync(what, where))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_sync(func, args, kwargs):
            self._record(str(func))
        return func(*args, **kwargs)

    # ------------------------------------------------------------------ tolist / numpy
    def __enter__(self) -> "SyncCounter":
        for name in ("tolist", "numpy"):
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def patched(tensor, *args, _name=name, _original=original, **kwargs):
                self._record(f"Tensor.{_name}")
                return _original(tensor, *args, **kwargs)

            setattr(torch.Tensor, name, patched)
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for name, original in self._saved.items():
                setattr(torch.Tensor, name, original)
            self._saved.clear()

    # ------------------------------------------------------------------ results
    def __len__(self) -> int:
        return len(self.records)

    def report(self) -> str:
        return "\n".join(str(r) for r in self.records) or "(no synchronisation)"
