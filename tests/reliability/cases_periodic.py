"""Audit cases of periodic structures, stress and the memory guard of all-pairs graphs."""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import case


def _model(cutoff):
    from pyg_schnet import SchNet

    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=cutoff).double()


def _crystal():
    z = torch.tensor([14, 14])
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.36, 1.36, 1.36]], dtype=torch.float64)
    cell = torch.tensor([[0.0, 2.72, 2.72], [2.72, 0.0, 2.72], [2.72, 2.72, 0.0]], dtype=torch.float64)
    return z, pos, cell[None], torch.ones(1, 3, dtype=torch.bool)


@case(
    "periodic",
    "periodic structure into an all-pairs model (cutoff=None)",
    ValueError,
    r"structure 0 is periodic.*cutoff=None.*finite cutoff",
)
def _(tmp: Path):
    _model(None)(*_crystal()[:2], None, *_crystal()[2:])


@case("periodic", "cell given without pbc", ValueError, r"cell was given without pbc")
def _(tmp: Path):
    z, pos, cell, _ = _crystal()
    _model(4.0)(z, pos, None, cell, None)


@case(
    "periodic",
    "periodic axis with a zero lattice vector",
    ValueError,
    r"structure 0 is periodic along axes \[0, 1, 2\].*zero or linearly dependent",
)
def _(tmp: Path):
    z, pos, cell, pbc = _crystal()
    cell = cell.clone()
    cell[0, 2] = 0.0
    _model(4.0)(z, pos, None, cell, pbc)


@case("periodic", "cell with NaN", ValueError, r"structure 0 has a non-finite cell")
def _(tmp: Path):
    z, pos, cell, pbc = _crystal()
    cell = cell.clone()
    cell[0, 1, 1] = float("nan")
    _model(4.0)(z, pos, None, cell, pbc)


@case(
    "periodic",
    "atom on a periodic image of another atom",
    ValueError,
    r"atoms 0 and 1 of structure 0 coincide: atom 1 is on atom 0.s image shifted by \[0, 1, 0\] lattice vectors",
)
def _(tmp: Path):
    z, pos, cell, pbc = _crystal()
    pos = torch.stack([pos[0], pos[0] + cell[0, 1]])
    _model(4.0)(z, pos, None, cell, pbc)


@case(
    "periodic",
    "stress of a molecule in a batch with a crystal",
    ValueError,
    r"stress is undefined for structure 1: it has no periodic axis",
)
def _(tmp: Path):
    z, pos, cell, pbc = _crystal()
    both = torch.cat([pos, pos + 5.0])
    _model(4.0).energy_forces_stress(
        torch.cat([z, z]),
        both,
        torch.tensor([0, 0, 1, 1]),
        torch.cat([cell, torch.zeros_like(cell)]),
        torch.cat([pbc, torch.zeros_like(pbc)]),
    )


@case(
    "periodic",
    "stress of a slab without a third lattice vector (zero volume)",
    ValueError,
    r"stress is undefined for structure 0: its cell .* has zero volume",
)
def _(tmp: Path):
    z, pos, cell, _ = _crystal()
    cell = cell.clone()
    cell[0, 2] = 0.0
    _model(4.0).energy_forces_stress(z, pos, None, cell, torch.tensor([[True, True, False]]))


@case(
    "periodic",
    "periodic batch into dense (padded) batching",
    ValueError,
    r"structure 0 of the batch is periodic .*dense \(padded\) path handles molecules only",
)
def _(tmp: Path):
    from torch_geometric.data import Batch, Data

    from pyg_schnet.batching import to_dense

    z, pos, cell, pbc = _crystal()
    to_dense(Batch.from_data_list([Data(z=z, pos=pos, cell=cell, pbc=pbc)]))


@case(
    "model",
    "all-pairs model (cutoff=None) on 2,000 atoms with forces",
    MemoryError,
    r"needs about \d+\.\d GiB, more than the limit of 4\.0 GiB: build the model with a cutoff",
)
def _(tmp: Path):
    import os

    from pyg_schnet import SchNet

    if os.environ.get("PYG_SCHNET_MAX_GRAPH_BYTES"):
        raise RuntimeError("unset PYG_SCHNET_MAX_GRAPH_BYTES to run the audit")
    SchNet.from_paper().energy_and_forces(torch.full((2000,), 6), torch.rand(2000, 3) * 30)
