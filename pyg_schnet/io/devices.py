"""Devices: the default device of a run and a one-line description of it for logs and results."""

from __future__ import annotations

import os
import platform
from typing import Optional

import torch

from pyg_schnet.validation import check_device


def resolve_device(device: Optional[str], owner: str = "device") -> str:
    """``device``, else ``'cuda'`` when CUDA is available, else ``'cpu'``; checked by
    :func:`pyg_schnet.validation.check_device`, the one device check of every command, the trainer
    and the calculator: a malformed name or an accelerator this machine lacks is a :class:`ValueError`
    naming ``owner`` and what to use instead, before any file is read."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    check_device(owner, device)
    return str(device)


def describe_device(device: str) -> str:
    """E.g. ``'cpu (2 threads, 2 cores)'`` or ``'cuda: NVIDIA H100 80GB HBM3'``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    threads = torch.get_num_threads()
    return (
        f"cpu ({threads} thread{'s' if threads != 1 else ''}, {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()})"
    )
