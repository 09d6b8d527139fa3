"""What a benchmark report records about where it ran: machine, versions, backend, command, date."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from pyg_schnet import allocator
from pyg_schnet import backend as kernels


def machine_description(device: torch.device) -> str:
    """E.g. ``2 x AMD EPYC 7B13, 24 GiB RAM`` (CPU) or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "CPU"
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        if found:
            model = found.group(1).strip()
    except OSError:
        pass
    mem = ""
    try:
        found = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        if found:
            mem = f", {int(found.group(1)) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    gpu = "" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} x {model}{mem}{gpu}"


def versions(extra: Optional[Dict[str, Optional[str]]] = None) -> Dict[str, Optional[str]]:
    """Versions of Python, torch, torch-geometric, torch-scatter, torch-cluster, pyg-schnet (``None``: absent)."""
    import torch_geometric

    import pyg_schnet

    out: Dict[str, Optional[str]] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "pyg_schnet": pyg_schnet.__version__,
    }
    for mod in ("torch_scatter", "torch_cluster"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    out.update(extra or {})
    return out


def backend() -> Dict[str, bool]:
    """Whether pyg-schnet aggregates with torch-scatter and builds radius graphs with torch-cluster."""
    return dict(torch_scatter=kernels.USE_TORCH_SCATTER, torch_cluster=kernels.USE_TORCH_CLUSTER)


def command_line(script: str, argv: Optional[Sequence[str]]) -> str:
    """The command as a user would type it from the repository root."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", script, *(shlex.quote(a) for a in args)])


def today() -> str:
    return _dt.date.today().isoformat()


def run_metadata(script: str, argv: Optional[Sequence[str]], device: torch.device, threads: int) -> Dict[str, Any]:
    """Date, command, machine, threads, versions, backend and allocator mode
    (:func:`pyg_schnet.allocator.retain_freed_memory`) of a benchmark run."""
    return dict(
        date=today(),
        command=command_line(script, argv),
        python_executable=sys.executable,
        device=machine_description(device),
        device_type=device.type,
        threads=threads,
        versions=versions(),
        backend=backend(),
        freed_memory_retained=allocator.freed_memory_retained(),
    )


def allocator_note(meta: Dict[str, Any]) -> str:
    """How the report's process allocated memory, for its header line."""
    if meta.get("freed_memory_retained"):
        return "malloc: freed memory retained for all implementations (`pyg_schnet.allocator.retain_freed_memory`)"
    return "malloc: the C library's default"
