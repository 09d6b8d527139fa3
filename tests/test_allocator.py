"""glibc malloc settings: retained memory is reused without page faults, and the default comes back."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest
import torch

from harness.timing import PeakMemory
from pyg_schnet import allocator

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc"
)

BLOCK = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MiB)


_FAULTS_SCRIPT = """
import resource, sys, torch
from pyg_schnet import load_model, SchNet  # the model and its files loaded first, as `pyg-schnet md` has them
from pyg_schnet import allocator
if sys.argv[1] == "retain":
    assert allocator.retain_freed_memory()
faults = []
for _ in range(6):  # steps of a loop: fill a 64 MiB tensor, free it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(16 * 1024 * 1024)
    block.fill_(1.0)
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(" ".join(map(str, faults)))
"""


def _faults_per_step(mode: str) -> list:
    """Minor page faults of six allocate-fill-free steps of 64 MiB in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT, mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [int(v) for v in proc.stdout.split()]


@pytest.fixture
def restore_allocator():
    yield
    allocator.release_freed_memory()


@glibc_only
def test_retained_memory_is_reused_without_page_faults():
    """With glibc's default every 64 MiB block is a fresh mapping (16,384 pages faulted in per step);
    retained, the heap settles within three steps (the first reuse may miss the freed block by the
    alignment padding) and later steps fault nothing in."""
    mapped = _faults_per_step("default")
    if min(mapped[3:]) < 1000:
        pytest.skip(f"the kernel faulted a fresh 64 MiB mapping in only {min(mapped[3:])} pages (huge pages?)")
    reused = _faults_per_step("retain")
    assert max(reused[3:]) < 0.05 * min(mapped[3:]), (reused, mapped)


@glibc_only
def test_release_gives_glibcs_behaviour_back(restore_allocator):
    assert allocator.retain_freed_memory()
    assert allocator.freed_memory_retained()
    assert allocator.release_freed_memory()
    assert not allocator.freed_memory_retained()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_bytes() -> int:
    """Bytes of glibc's main heap (``mallinfo2().arena``), free chunks included."""
    libc = ctypes.CDLL("libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc without mallinfo2 (before 2.33)")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().arena)


@glibc_only
def test_a_freed_block_above_two_gib_stays_in_the_heap(restore_allocator):
    """mallopt's trim threshold is an int: any finite value (at most 2 GiB) would give back a free
    heap top larger than that, and the next step would fault it in again."""
    assert allocator.retain_freed_memory()
    nbytes = 2304 * 1024 * 1024  # 2.25 GiB
    block = torch.empty(nbytes // 4)
    block.fill_(1.0)
    del block
    assert _heap_bytes() >= nbytes


@glibc_only
def test_peak_memory_counts_tensors_not_the_retained_heap(restore_allocator):
    assert allocator.retain_freed_memory()
    for _ in range(2):  # the heap now holds two freed 64 MiB blocks
        a, b = torch.ones(BLOCK // 4), torch.ones(BLOCK // 4)
        del a, b
    keep = torch.ones(BLOCK // 4)
    with PeakMemory(torch.device("cpu")) as mem:
        t = torch.ones(BLOCK // 8)  # 32 MiB, then 32 MiB more while it lives
        u = t * 2
        del t, u, keep
        w = torch.ones(BLOCK // 16)  # 16 MiB after both were freed
        del w
    assert mem.mib is not None and mem.mib == pytest.approx(64.0, abs=0.5), mem.mib


def test_without_glibc_both_are_no_ops(monkeypatch, restore_allocator):
    monkeypatch.setattr(allocator, "_libc", None)
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.retain_freed_memory() is False
    assert allocator.release_freed_memory() is False
    assert not allocator.freed_memory_retained()
