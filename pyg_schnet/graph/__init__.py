"""The interaction graph: pairs of a molecule (all, or within a cutoff), periodic images, memory guard.

- :mod:`pyg_schnet.graph.pairs`: :func:`build_graph` / :func:`build_pairs` / :func:`full_graph` /
  :func:`mirror` / :func:`edge_distances`, the radius graph (torch-cluster or the fallback);
- :mod:`pyg_schnet.graph.periodic`: cells and pbc, the neighbour search over images (vesin, ASE);
- :mod:`pyg_schnet.graph.memory`: the all-pairs graph's memory estimate and limit.
"""

from pyg_schnet.graph.memory import all_pairs_bytes, check_all_pairs_memory
from pyg_schnet.graph.pairs import (
    build_graph,
    build_pairs,
    build_periodic_pairs,
    check_max_num_neighbors,
    edge_distances,
    full_graph,
    full_pairs,
    mirror,
    radius_graph,
)
from pyg_schnet.graph.periodic import check_cell_and_pbc, check_distinct_images, periodic_pairs

__all__ = [
    "all_pairs_bytes",
    "build_graph",
    "build_pairs",
    "build_periodic_pairs",
    "check_all_pairs_memory",
    "check_cell_and_pbc",
    "check_distinct_images",
    "check_max_num_neighbors",
    "edge_distances",
    "full_graph",
    "full_pairs",
    "mirror",
    "periodic_pairs",
    "radius_graph",
]
