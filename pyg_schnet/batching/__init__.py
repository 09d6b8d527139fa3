"""Batching helpers: dense (padded) batches and the choice between sparse and dense batching."""

from pyg_schnet.batching.auto import choose_batching, measure_batching
from pyg_schnet.batching.dense import DenseBatch, to_dense, to_dense_atoms, to_sparse

__all__ = ["DenseBatch", "choose_batching", "measure_batching", "to_dense", "to_dense_atoms", "to_sparse"]
