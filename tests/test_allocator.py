"""glibc malloc settings: retained memory is reused without page faults, and the default comes back."""
from __future__ import annotations

import platform
import resource
import sys

import pytest
import torch

from pyg_schnet import allocator
from pyg_schnet.bench.timing import PeakMemory

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="needs Linux with glibc"
)

BLOCK = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MiB)


def _faults_of_second_allocation() -> int:
    """Minor page faults of filling a 64 MiB tensor right after an equal one was freed."""
    a = torch.empty(BLOCK // 4)
    a.fill_(1.0)
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = torch.empty(BLOCK // 4)
    b.fill_(2.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del b
    return faults


@pytest.fixture
def restore_allocator():
    yield
    allocator.release_freed_memory()


@glibc_only
def test_retained_memory_is_reused_without_page_faults(restore_allocator):
    assert allocator.release_freed_memory()
    mapped = _faults_of_second_allocation()
    if mapped < 1000:
        pytest.skip(f"the kernel faulted a fresh 64 MiB mapping in only {mapped} pages (huge pages?)")
    assert allocator.retain_freed_memory()
    assert allocator.freed_memory_retained()
    reused = _faults_of_second_allocation()
    assert reused < 0.05 * mapped, (reused, mapped)
    assert allocator.release_freed_memory()
    assert not allocator.freed_memory_retained()
    assert _faults_of_second_allocation() > 0.5 * mapped


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
