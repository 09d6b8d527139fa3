"""Runs a function on k CPU processes joined by a gloo process group (not a test module).

The processes are forked (no re-import: seconds, not tens of seconds), find each other on 127.0.0.1
at a free port through the same environment variables torchrun sets, and are killed when they
outlive a deadline, so a test that would hang fails with a TimeoutError instead.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.multiprocessing as mp

from pyg_schnet.train import distributed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _entry(
    rank: int,
    fn: Callable,
    world_size: int,
    port: int,
    timeout_s: Optional[float],
    args: Sequence[Any],
    errors: Optional[Path],
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    info = distributed.init_from_env("cpu", backend="gloo", timeout_s=timeout_s)
    assert info.world_size == world_size and info.rank == rank and info.backend == "gloo"
    try:
        fn(rank, *args)
    except BaseException as exc:
        if errors is not None:  # what each rank raised (the launcher reports only the first it sees)
            (errors / f"rank{rank}.error").write_text(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        torch.distributed.destroy_process_group()


def run_ranks(
    fn: Callable,
    *args: Any,
    world_size: int = 2,
    deadline_s: float = 60.0,
    collective_timeout_s: Optional[float] = 20.0,
    errors: Optional[Path] = None,
) -> None:
    """Calls ``fn(rank, *args)`` on ``world_size`` forked processes; raises what a rank raised
    (:class:`torch.multiprocessing.ProcessRaisedException`, the others are then terminated) or
    :class:`TimeoutError` after ``deadline_s``. With ``errors`` (a folder), each rank that raises
    writes ``rank<r>.error`` there."""
    port = free_port()
    context = mp.start_processes(
        _entry,
        args=(fn, world_size, port, collective_timeout_s, args, errors),
        nprocs=world_size,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + deadline_s
    while not context.join(timeout=0.2):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            raise TimeoutError(f"{world_size} ranks still running after {deadline_s} s (a hang)")
