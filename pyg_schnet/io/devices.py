"""Devices: the default device of a run and a one-line description of it for logs and results."""

from __future__ import annotations

import os
import platform
from typing import Optional

import torch


def resolve_device(device: Optional[str]) -> str:
    """``device``, else ``'cuda'`` when CUDA is available, else ``'cpu'``."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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
