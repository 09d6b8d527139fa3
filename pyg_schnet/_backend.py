"""Compiled kernels with a plain-PyTorch fallback.

pyg-schnet aggregates messages with :func:`torch_scatter.scatter_add` and builds radius graphs with
:func:`torch_cluster.radius_graph`. When either package cannot be imported (they compile from source
for new torch releases), the same operations run in plain PyTorch (``Tensor.index_add_`` and a
brute-force pair search) and one :class:`RuntimeWarning` says so. Both paths give identical results;
``tests/test_backend.py`` proves it.

The module attributes :data:`USE_TORCH_SCATTER` and :data:`USE_TORCH_CLUSTER` say which path is in
use; tests flip them to compare the two.
"""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor

try:  # pragma: no cover - which branch runs depends on the installation
    import torch_scatter

    _SCATTER_ERROR: Optional[str] = None
except (ImportError, OSError) as exc:  # pragma: no cover
    torch_scatter = None
    _SCATTER_ERROR = f"{type(exc).__name__}: {exc}"

try:  # pragma: no cover
    import torch_cluster

    _CLUSTER_ERROR: Optional[str] = None
except (ImportError, OSError) as exc:  # pragma: no cover
    torch_cluster = None
    _CLUSTER_ERROR = f"{type(exc).__name__}: {exc}"

#: True when aggregation goes through the compiled torch-scatter package.
USE_TORCH_SCATTER: bool = torch_scatter is not None
#: True when radius graphs come from the compiled torch-cluster package.
USE_TORCH_CLUSTER: bool = torch_cluster is not None

_missing = [
    f"{name} ({err})"
    for name, err in (("torch-scatter", _SCATTER_ERROR), ("torch-cluster", _CLUSTER_ERROR))
    if err is not None
]
if _missing:
    warnings.warn(
        "pyg-schnet: could not import " + "; ".join(_missing) + ". Falling back to plain PyTorch "
        "(index_add_ and a brute-force radius graph): same results, slower on large systems. "
        "Install them with `pip install --no-build-isolation torch-scatter torch-cluster`.",
        RuntimeWarning,
        stacklevel=2,
    )


def scatter_add(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    r"""Sum the rows of ``src`` into ``dim_size`` buckets: :math:`out_k = \sum_{e: index_e = k} src_e`.

    Args:
        src: values ``[E, ...]``.
        index: bucket of each row, ``[E]`` long.
        dim_size: number of buckets (rows of the output).
    """
    if USE_TORCH_SCATTER:
        return torch_scatter.scatter_add(src, index, dim=0, dim_size=dim_size)
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add(0, index, src)


def radius_graph(pos: Tensor, r: float, batch: Tensor, max_num_neighbors: int) -> Tensor:
    """Directed pairs ``(j, i)`` of distinct atoms of one molecule closer than ``r`` Angstrom.

    Returns ``edge_index`` ``[2, E]`` with sources (neighbours ``j``) in row 0 and targets (centres
    ``i``) in row 1, PyG's ``source_to_target`` flow. ``max_num_neighbors`` is passed to
    torch-cluster, which keeps at most that many neighbours per centre; callers size it so that
    nothing is dropped (see :func:`pyg_schnet.graph.build_graph`). The fallback never truncates.
    """
    if USE_TORCH_CLUSTER:
        return torch_cluster.radius_graph(
            pos, r=r, batch=batch, loop=False, max_num_neighbors=max_num_neighbors, flow="source_to_target"
        )
    from .graph import full_graph  # local import: graph imports this module

    edge_index = full_graph(batch)
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    keep = (vec * vec).sum(dim=-1) <= r * r
    return edge_index[:, keep]
