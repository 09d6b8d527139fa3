r"""How the C library's ``malloc`` treats large CPU tensors: keep freed memory for the next step.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every block larger than its
mmap threshold (at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when the
tensor is freed, so every later allocation of that size starts from untouched pages, and the kernel
zero-fills each 4 KiB page on first write (a *page fault*). A training or MD step on a large system
allocates and frees the same large per-pair tensors every step (``pairs x filters x 4`` bytes: 39 MiB
for 12,800 pairs of a 128-filter block), so once they pass 32 MiB, page faults take a growing share of
the step and the time per pair rises with the size of the system. On a 2-core EPYC at one thread, a
5 A cutoff E+F training step of a 3,000-atom cluster spent 2.6 s of its 8.5 s in the kernel and
took 6.2 s in steady state; with the memory kept, 1.95 s, and the cost per pair became constant
(``docs/benchmarks.md``, section *Scale*).

:func:`retain_freed_memory` tells glibc to serve every block from its heap and never to give freed
memory back, so a step reuses the pages of the previous one; the process's resident size then stays
at the peak of the largest step (what a training or MD process needs anyway). It is process-wide, so
the command-line programs (``pyg-schnet train`` / ``md``, the benchmark scripts) call it and the
library never does on import. :func:`release_freed_memory` restores glibc's behaviour. Elsewhere (musl,
macOS, Windows) both are no-ops that return ``False``; a preloaded jemalloc or tcmalloc, which reuse
freed memory themselves, are the alternative there.
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
    (``M_TRIM_THRESHOLD`` at the largest ``int``), so freed tensors' pages are reused by the next step
    without page faults. Returns whether the setting took effect (``False`` without glibc)."""
    global _retained
    libc = _glibc()
    if libc is None:
        return False
    _retained = _mallopt(libc, mmap_max=0, trim=2**31 - 1, top_pad=TOP_PAD)
    return _retained


def release_freed_memory() -> bool:
    """glibc's behaviour again: blocks above 32 MiB are mapped and unmapped one by one, and the free
    top of the heap goes back to the system (``malloc_trim``). Returns ``False`` without glibc."""
    global _retained
    libc = _glibc()
    if libc is None:
        return False
    ok = _mallopt(
        libc, mmap_max=GLIBC_MMAP_MAX, mmap_threshold=GLIBC_MMAP_THRESHOLD, trim=2 * GLIBC_MMAP_THRESHOLD,
        top_pad=GLIBC_TOP_PAD,
    )
    libc.malloc_trim(0)
    _retained = False
    return ok


def freed_memory_retained() -> bool:
    """Whether :func:`retain_freed_memory` is in effect (set by this module)."""
    return _retained
