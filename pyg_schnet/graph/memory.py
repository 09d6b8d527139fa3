r"""Memory guard of the all-pairs graph: its size grows as :math:`n^2` in the atoms of a structure, so
its memory is estimated before it is built and a batch above the limit is refused with the advice to
set a cutoff (never truncated)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from pyg_schnet import backend


def all_pairs_bytes(
    batch: Tensor, num_gaussians: int, num_filters: int, num_interactions: int, dtype: torch.dtype, with_grad: bool
) -> int:
    r"""Estimated peak memory (bytes) of the model on the all-pairs graph of ``batch``.

    With :math:`P = \sum_m n_m (n_m - 1) / 2` pairs, :math:`K` Gaussians, :math:`F` filters, :math:`L`
    interaction blocks and :math:`b` bytes per number:

    .. math::
        \text{bytes} \approx P\, b \times \begin{cases} 4K + 10 F L & \text{autograd on (forces, training)} \\
                                                     4K + 4F & \text{inference under no\_grad} \end{cases}

    (the Gaussian expansion and its temporaries, then per block the filter network, the mirrored
    filters and the messages, which autograd keeps for the backward pass). Measured peak memory of
    the paper's configuration (float32, one CPU thread, 2026-11-22), measured / estimated: 300 atoms
    229 / 250 MB (no_grad), 575 / 534 MB (forces); 600 atoms 906 / 1,001 MB (no_grad), 2,057 / 2,142 MB
    (forces). Command and machine in ``docs/periodic.md``.
    """
    counts = torch.bincount(batch).double() if batch.numel() else batch.new_zeros(1).double()
    num_pairs = float((counts * (counts - 1) / 2).sum())
    per_pair = 4 * num_gaussians + (10 * num_filters * num_interactions if with_grad else 4 * num_filters)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(num_pairs * per_pair * itemsize)


def check_all_pairs_memory(
    batch: Tensor,
    num_gaussians: int,
    num_filters: int,
    num_interactions: int,
    dtype: torch.dtype,
    with_grad: bool,
    limit: Optional[int] = None,
) -> None:
    """Raise :class:`MemoryError` before an all-pairs graph whose estimate (:func:`all_pairs_bytes`)
    exceeds the limit (:func:`pyg_schnet.backend.graph_memory_limit`: the model's ``limit``, else
    :data:`pyg_schnet.backend.MAX_GRAPH_BYTES`), advising a cutoff."""
    estimate = all_pairs_bytes(batch, num_gaussians, num_filters, num_interactions, dtype, with_grad)
    limit = backend.graph_memory_limit(limit)
    if estimate > limit:
        largest = int(torch.bincount(batch).max())
        raise MemoryError(
            f"the all-pairs graph (cutoff=None) of this batch ({batch.numel()} atoms, largest structure "
            f"{largest} atoms) needs about {estimate / 2**30:.1f} GiB, more than the limit of "
            f"{limit / 2**30:.1f} GiB: build the model with a cutoff (e.g. cutoff=5.0), use smaller "
            "batches, or raise the limit with the environment variable PYG_SCHNET_MAX_GRAPH_BYTES "
            "(read on import), pyg_schnet.backend.MAX_GRAPH_BYTES or the model's representation.max_graph_bytes"
        )
