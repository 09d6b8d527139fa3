r"""Memory guards of the interaction graph: the all-pairs graph grows as :math:`n^2` in the atoms of a
structure, a periodic graph as :math:`n^2 r_c^3 / V` (atoms times the images within the cutoff), so
their memory is estimated before they are built and a batch above the limit is refused with advice
(never truncated)."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from pyg_schnet import backend
from pyg_schnet.graph.periodic import check_search_memory


def graph_bytes(
    num_pairs: float, num_gaussians: int, num_filters: int, num_interactions: int, dtype: torch.dtype, with_grad: bool
) -> int:
    """Estimated peak memory (bytes) of the model on a graph of ``num_pairs`` unordered pairs (the
    per-pair cost of :func:`all_pairs_bytes`)."""
    per_pair = 4 * num_gaussians + (10 * num_filters * num_interactions if with_grad else 4 * num_filters)
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(num_pairs * per_pair * itemsize)


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
    return graph_bytes(num_pairs, num_gaussians, num_filters, num_interactions, dtype, with_grad)


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
    if estimate > backend.graph_memory_limit(limit):  # the sizes are read again only to say why
        check_all_pairs_memory_of(
            torch.bincount(batch).tolist(), num_gaussians, num_filters, num_interactions, dtype, with_grad, limit
        )


def check_all_pairs_memory_of(
    counts: Sequence[int],
    num_gaussians: int,
    num_filters: int,
    num_interactions: int,
    dtype: torch.dtype,
    with_grad: bool,
    limit: Optional[int] = None,
) -> None:
    """:func:`check_all_pairs_memory` for molecules of ``counts`` atoms known on the host (no device read)."""
    num_pairs = sum(n * (n - 1) // 2 for n in counts)
    estimate = graph_bytes(num_pairs, num_gaussians, num_filters, num_interactions, dtype, with_grad)
    limit = backend.graph_memory_limit(limit)
    if estimate > limit:
        raise MemoryError(
            f"the all-pairs graph (cutoff=None) of this batch ({sum(counts)} atoms, largest structure "
            f"{max(counts, default=0)} atoms) needs about {estimate / 2**30:.1f} GiB, more than the limit of "
            f"{limit / 2**30:.1f} GiB: build the model with a cutoff (e.g. cutoff=5.0), use smaller "
            "batches, or raise the limit with the environment variable PYG_SCHNET_MAX_GRAPH_BYTES "
            "(read on import), pyg_schnet.backend.MAX_GRAPH_BYTES or the model's representation.max_graph_bytes"
        )


def periodic_graph_pairs(batch: Tensor, cell: Tensor, pbc: Tensor, cutoff: float) -> float:
    """Expected unordered pairs of the periodic structures of a batch (molecules of the batch are not
    counted): what :func:`pyg_schnet.graph.periodic.check_search_memory` returns, which first refuses a
    degenerate cell or a search beyond its memory limit."""
    counts = torch.bincount(batch, minlength=cell.size(0)).tolist()
    flags = pbc.cpu().numpy().astype(bool)
    graphs = [g for g in range(len(counts)) if flags[g].any()]
    return check_search_memory(graphs, counts, cell.detach().cpu().double().numpy(), flags, cutoff)


@torch.compiler.disable  # reads the batch's sizes and cells on the host
def check_periodic_memory(
    batch: Tensor,
    cell: Tensor,
    pbc: Tensor,
    cutoff: float,
    num_gaussians: int,
    num_filters: int,
    num_interactions: int,
    dtype: torch.dtype,
    with_grad: bool,
    limit: Optional[int] = None,
) -> None:
    """Raise :class:`MemoryError` before a periodic graph whose estimate (:func:`graph_bytes` of the
    expected pairs, :func:`periodic_graph_pairs`) exceeds the limit (as :func:`check_all_pairs_memory`).

    The cells are checked first (:func:`pyg_schnet.graph.periodic.check_search_memory`: a degenerate
    cell raises its own :class:`ValueError`, and the search's memory its own :class:`MemoryError`), so
    the model can call this before :func:`~pyg_schnet.graph.build_periodic_pairs` at no extra cost
    (that check's result is remembered).
    """
    num_pairs = periodic_graph_pairs(batch, cell, pbc, cutoff)
    estimate = graph_bytes(num_pairs, num_gaussians, num_filters, num_interactions, dtype, with_grad)
    limit = backend.graph_memory_limit(limit)
    if estimate > limit:
        raise MemoryError(
            f"the periodic graph of this batch ({batch.numel()} atoms, cutoff {cutoff:g} Angstrom) holds about "
            f"{num_pairs:.3g} pairs ({2 * num_pairs / max(batch.numel(), 1):.3g} neighbours per atom) and needs "
            f"about {estimate / 2**30:.1f} GiB, more than the limit of {limit / 2**30:.1f} GiB: check the cells "
            "and positions (units? too many atoms per volume?), lower the cutoff, use smaller batches, or raise "
            "the limit with the environment variable PYG_SCHNET_MAX_GRAPH_BYTES (read on import), "
            "pyg_schnet.backend.MAX_GRAPH_BYTES or the model's representation.max_graph_bytes"
        )
