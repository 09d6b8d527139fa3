"""The training domain of a data set (:class:`~pyg_schnet.models.domain.TrainingDomain`), measured in one pass.

The trainer calls :func:`training_domain_of` once, on its training set, and records the result as
``model.training_domain`` (saved in ``model.pt``). The examples are read as the trainer reads them
(transforms applied, so energies are in the unit the model learns), in batches of
:data:`DOMAIN_BATCH` structures.
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor
from torch_geometric.loader import DataLoader
from torch_geometric.utils import to_dense_batch

from pyg_schnet.models.domain import TrainingDomain

#: Structures per batch of the pass.
DOMAIN_BATCH = 1024
#: Largest pair-distance block (structures x atoms x atoms numbers) computed at once.
_PAIR_BLOCK = 1 << 24


def min_pair_distance(pos: Tensor, batch: Tensor) -> Optional[float]:
    r"""Smallest :math:`|\mathbf r_i - \mathbf r_j|`, :math:`i \ne j` in one structure, over the structures of
    ``batch`` (float64; ``None`` when no structure has two atoms)."""
    dense, mask = to_dense_batch(pos.double(), batch)
    num_graphs, n_max = mask.shape
    if n_max < 2:
        return None
    best = math.inf
    step = max(1, _PAIR_BLOCK // (n_max * n_max))
    eye = torch.eye(n_max, dtype=torch.bool, device=pos.device)
    for start in range(0, num_graphs, step):
        block, valid = dense[start : start + step], mask[start : start + step]
        distances = torch.cdist(block, block)
        real_pair = valid.unsqueeze(2) & valid.unsqueeze(1) & ~eye
        if bool(real_pair.any()):
            best = min(best, float(distances[real_pair].min()))
    return best if math.isfinite(best) else None


def training_domain_of(dataset, batch_size: int = DOMAIN_BATCH) -> TrainingDomain:
    """Elements, size, closest pair and per-atom energy range of the structures of ``dataset`` (examples
    with ``z``, ``pos`` and optionally ``energy``), in one pass."""
    elements: set = set()
    num_structures = max_atoms = 0
    dmin: Optional[float] = None
    low, high = math.inf, -math.inf
    with_energy = True
    for data in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        z, pos, batch = data.z, data.pos, data.batch
        elements.update(int(v) for v in torch.unique(z).tolist())
        counts = torch.bincount(batch, minlength=data.num_graphs)
        num_structures += data.num_graphs
        max_atoms = max(max_atoms, int(counts.max()))
        d = min_pair_distance(pos, batch)
        if d is not None:
            dmin = d if dmin is None else min(dmin, d)
        energy = getattr(data, "energy", None)
        if not isinstance(energy, Tensor):
            with_energy = False
            continue
        per_atom = energy.detach().double().reshape(-1) / counts.double()
        low, high = min(low, float(per_atom.min())), max(high, float(per_atom.max()))
    ordered: List[int] = sorted(elements)
    return TrainingDomain(
        elements=tuple(ordered),
        num_structures=num_structures,
        max_atoms=max_atoms,
        min_distance=dmin,
        energy_per_atom=(low, high) if with_energy and num_structures else None,
    )
