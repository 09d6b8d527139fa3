r"""How the C library's ``malloc`` treats large CPU tensors: keep freed memory for the next step.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every block larger than its
mmap threshold (at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when the
tensor is freed, so every later allocation of that size starts from untouched pages, and the kernel
zero-fills each 4 KiB page on first write (a *page fault*). A training or MD step on a large system
allocates and frees the same large per-pair tensors every step (``pairs x filters x 4`` bytes: 39 MiB
for 12,800 pairs of a 128-filter block), so once they pass 32 MiB, page faults take a growing share of
the step and the time per pair rises with the size of the system. On a 2-core EPYC at one thread, a
5 A cutoff E+F training step of a 3,000-atom cluster took 6.2 s with glibc's default and 1.9 s with
freed memory kept (no page faults after the first two steps), and the time per pair became about
constant from 100 to 10,000 atoms (``docs/benchmarks.md``, section *Scale*).

:func:`retain_freed_memory` tells glibc to serve every block from its heap and never to give freed
memory back, so a step reuses the pages of the previous one. The price is memory: the resident size
stays at the peak of the largest step plus the heap's fragmentation. A process that repeats one kind
of step (MD of one system) settles quickly: 10,000 atoms, energy + forces, 3.6 GB of live tensors,
5.1 GB resident from the second step on. Force training fragments more: the scale benchmark's
10,000-atom training step (10.4 GB of live tensors) ran at 19 GB resident in a process of its own,
and passed 21 GB after a 3,000-atom step (stopped there). The setting is process-wide, so the library
never makes it on import: ``pyg-schnet md`` and ``benchmarks/peers.py`` call it; the training
command does not (molecule batches allocate blocks far below the mmap threshold, where it changes
nothing). :func:`release_freed_memory` restores glibc's behaviour. Elsewhere (musl, macOS, Windows)
both are no-ops that return ``False``; a preloaded jemalloc or tcmalloc, which reuse freed memory
themselves, are the alternative there.
"""

from __future__ import annotations

import ctypes
import platform
import sys
from typing import Optional

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

#: glibc's defaults for the settings :func:`retain_freed_memory` changes (``M_MMAP_MAX`` 65536; the
#: thresholds at the top of glibc's dynamic range, 32 MiB and twice that).
GLIBC_MMAP_MAX = 65536
GLIBC_MMAP_THRESHOLD = 32 * 1024 * 1024
GLIBC_TOP_PAD = 128 * 1024

#: Heap kept above the top allocation when the heap grows, so that growing it is rare.
TOP_PAD = 64 * 1024 * 1024

_libc: Optional[ctypes.CDLL] = None
_retained = False


def _glibc() -> Optional[ctypes.CDLL]:
    global _libc
    if _libc is None:
        if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
            return None
        try:
            _libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return None
    return _libc


def _mallopt(libc: ctypes.CDLL, **settings: int) -> bool:
    codes = dict(trim=_M_TRIM_THRESHOLD, top_pad=_M_TOP_PAD, mmap_threshold=_M_MMAP_THRESHOLD, mmap_max=_M_MMAP_MAX)
    return all(libc.mallopt(codes[name], int(value)) == 1 for name, value in settings.items())


def retain_freed_memory() -> bool:
    """Serve every allocation from glibc's heap (``M_MMAP_MAX = 0``) and never trim it
    (``M_TRIM_THRESHOLD = -1``, which glibc documents as "disables trimming completely"; a finite
    threshold, at most 2 GiB through ``mallopt``, would give back the free top of a heap whose steps
    need more than that, and the next step would fault it in again), so freed tensors' pages are
    reused by the next step without page faults. Returns whether the setting took effect (``False``
    without glibc)."""
    global _retained
    libc = _glibc()
    if libc is None:
        return False
    _retained = _mallopt(libc, mmap_max=0, trim=-1, top_pad=TOP_PAD)
    return _retained


def release_freed_memory() -> bool:
    """glibc's behaviour again: blocks above 32 MiB are mapped and unmapped one by one, and the free
    top of the heap goes back to the system (``malloc_trim``). Returns ``False`` without glibc."""
    global _retained
    libc = _glibc()
    if libc is None:
        return False
    ok = _mallopt(
        libc,
        mmap_max=GLIBC_MMAP_MAX,
        mmap_threshold=GLIBC_MMAP_THRESHOLD,
        trim=2 * GLIBC_MMAP_THRESHOLD,
        top_pad=GLIBC_TOP_PAD,
    )
    libc.malloc_trim(0)
    _retained = False
    return ok


def freed_memory_retained() -> bool:
    """Whether :func:`retain_freed_memory` is in effect (set by this module)."""
    return _retained
