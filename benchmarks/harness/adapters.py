"""pyg-schnet, PyG's ``torch_geometric.nn.models.SchNet`` and SchNetPack's SchNet behind one interface.

Each :class:`Runner` builds its implementation from a :class:`~harness.configs.ModelConfig`
(float32, seeded) with an Adam optimiser, and offers the steps the benchmarks time:

- :meth:`Runner.train_step`: forward, loss, backward, Adam step; with ``with_forces`` the loss is
  ``mse(E) + mse(F)`` with ``F = -dE/dR`` kept in the graph (``create_graph=True``), so the backward
  pass is a double backward;
- :meth:`Runner.inference_step`: energies, eval mode, ``torch.no_grad()``;
- :meth:`Runner.md_call`: one molecule, energy and forces, eval mode (the call an MD step makes).

Every step builds its interaction graph from the positions, as a training loop over a data set does.
The peers get the same pairs as ours (:func:`pyg_schnet.graph.build_graph`: every pair of a molecule,
or torch-cluster's radius graph, never truncated) and Gaussian widths set to our ``gamma``: their
defaults tie the width to the spacing of the centres (PyG: ``-0.5 / spacing^2``, i.e. gamma = 50 for
0.1 A spacing; SchNetPack: width = spacing).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor
from torch_geometric.data import Batch

from harness.configs import ModelConfig
from harness.schnetpack_import import import_schnetpack
from pyg_schnet.batching import to_dense
from pyg_schnet.graph import build_graph, edge_distances
from pyg_schnet.models import SchNet


def _mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().mean()


class Runner:
    """One implementation: a model, an Adam optimiser and the steps a benchmark times."""

    name = ""
    label = ""

    def __init__(self, config: ModelConfig, device: torch.device) -> None:
        self.config = config
        self.device = device
        self.model: torch.nn.Module = torch.nn.Identity()
        self.opt: Optional[torch.optim.Optimizer] = None

    def finish_init(self) -> None:
        self.model.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-4)

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        raise NotImplementedError

    def energy(self, data: Batch) -> Tensor:
        raise NotImplementedError

    def md_call(self, z: Tensor, pos: Tensor) -> Tuple[Tensor, Tensor]:
        """Energy ``[1]`` and forces ``[n, 3]`` of one molecule, eval mode."""
        raise NotImplementedError

    def train_step(self, data: Batch, with_forces: bool) -> None:
        self.model.train()
        assert self.opt is not None
        self.opt.zero_grad(set_to_none=True)
        self.loss(data, with_forces).backward()
        self.opt.step()

    def inference_step(self, data: Batch) -> None:
        self.model.eval()
        with torch.no_grad():
            self.energy(data)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


class OursSparse(Runner):
    """:class:`pyg_schnet.SchNet` on PyG batches (``model(z, pos, batch)``)."""

    name = "ours_sparse"
    label = "pyg-schnet"

    def __init__(self, config: ModelConfig, device: torch.device) -> None:
        super().__init__(config, device)
        torch.manual_seed(0)
        self.model = SchNet(**config.ours_kwargs())
        self.model.units = {"energy": "kcal/mol", "length": "Angstrom"}  # the benchmark molecules' energies
        self.finish_init()

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if with_forces:
            energy, forces = self.model.energy_and_forces(data.z, data.pos, data.batch)
            return _mse(energy, data.energy) + _mse(forces, data.forces)
        return _mse(self.model(data.z, data.pos, data.batch), data.energy)

    def energy(self, data: Batch) -> Tensor:
        return self.model(data.z, data.pos, data.batch)

    def md_call(self, z: Tensor, pos: Tensor) -> Tuple[Tensor, Tensor]:
        self.model.eval()
        return self.model.energy_and_forces(z, pos)


class OursDense(OursSparse):
    """The same model class (and the same weights: same seed) on padded batches
    (:func:`pyg_schnet.batching.to_dense`, timed as part of each step)."""

    name = "ours_dense"
    label = "pyg-schnet dense"

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        dense = to_dense(data)
        if with_forces:
            energy, forces = self.model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
            return _mse(energy, data.energy) + _mse(forces[dense.mask], data.forces)
        return _mse(self.model.forward_dense(dense.z, dense.pos, dense.mask), data.energy)

    def energy(self, data: Batch) -> Tensor:
        dense = to_dense(data)
        return self.model.forward_dense(dense.z, dense.pos, dense.mask)


class PyGSchNet(Runner):
    """``torch_geometric.nn.models.SchNet`` with our graph builder and our Gaussians (centres, gamma)."""

    name = "pyg"
    label = "PyG SchNet"

    def __init__(self, config: ModelConfig, device: torch.device) -> None:
        super().__init__(config, device)
        from torch_geometric.nn.models import SchNet as TGSchNet

        if config.output_hidden != config.hidden_channels // 2:
            raise ValueError(
                f"PyG's SchNet has a {config.hidden_channels}-{config.hidden_channels // 2}-1 head; "
                f"config {config.name!r} asks for {config.hidden_channels}-{config.output_hidden}-1"
            )
        cutoff = config.cutoff

        def interaction_graph(pos: Tensor, batch: Tensor) -> Tuple[Tensor, Tensor]:
            edge_index = build_graph(pos, batch, cutoff)
            return edge_index, edge_distances(pos, edge_index)

        torch.manual_seed(0)
        self.model = TGSchNet(
            hidden_channels=config.hidden_channels,
            num_filters=config.num_filters,
            num_interactions=config.num_interactions,
            num_gaussians=config.num_gaussians,
            cutoff=config.peer_cutoff,
            interaction_graph=interaction_graph,
            max_num_neighbors=10**6,  # unused with our graph builder, which never drops a pair
        )
        set_pyg_gaussians(self.model, config)
        self.finish_init()

    def _energy(self, z: Tensor, pos: Tensor, batch: Optional[Tensor]) -> Tensor:
        return self.model(z, pos, batch).squeeze(-1)

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if not with_forces:
            return _mse(self._energy(data.z, data.pos, data.batch), data.energy)
        pos = data.pos.detach().requires_grad_(True)
        energy = self._energy(data.z, pos, data.batch)
        (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=True)
        return _mse(energy, data.energy) + _mse(-grad, data.forces)

    def energy(self, data: Batch) -> Tensor:
        return self._energy(data.z, data.pos, data.batch)

    def md_call(self, z: Tensor, pos: Tensor) -> Tuple[Tensor, Tensor]:
        self.model.eval()
        pos = pos.detach().requires_grad_(True)
        energy = self._energy(z, pos, None)
        (grad,) = torch.autograd.grad(energy.sum(), pos)
        return energy.detach(), -grad


def set_pyg_gaussians(model: torch.nn.Module, config: ModelConfig) -> None:
    """Give PyG's ``GaussianSmearing`` our centres and width: ``exp(coeff (d - offset)^2)`` with
    ``coeff = -gamma`` (its default is ``-0.5 / spacing^2``) and offsets on ``[rbf_start, rbf_stop]``."""
    smearing = model.distance_expansion
    smearing.offset = torch.linspace(
        config.rbf_start, config.rbf_stop, config.num_gaussians, dtype=smearing.offset.dtype
    )
    smearing.coeff = -float(config.gamma)


class SchNetPack(Runner):
    """``schnetpack.representation.SchNet`` + ``Atomwise`` (+ ``Forces``) in a ``NeuralNetworkPotential``,
    fed our pairs as ``idx_i`` / ``idx_j`` (built inside the timed step), Gaussian widths set to gamma."""

    name = "schnetpack"
    label = "SchNetPack"

    def __init__(self, config: ModelConfig, device: torch.device) -> None:
        super().__init__(config, device)
        spk, _ = import_schnetpack()
        self.props = spk.properties
        torch.manual_seed(0)
        radial = spk.nn.GaussianRBF(n_rbf=config.num_gaussians, cutoff=config.rbf_stop, start=config.rbf_start)
        set_schnetpack_gaussians(radial, config)
        representation = spk.representation.SchNet(
            n_atom_basis=config.hidden_channels,
            n_interactions=config.num_interactions,
            radial_basis=radial,
            cutoff_fn=spk.nn.CosineCutoff(config.peer_cutoff),
            n_filters=config.num_filters,
        )
        head = spk.atomistic.Atomwise(
            n_in=config.hidden_channels,
            n_hidden=config.output_hidden,
            output_key="energy",
            activation=spk.nn.shifted_softplus,
        )  # hidden -> output_hidden -> 1, summed over atoms
        pairwise = spk.atomistic.PairwiseDistances
        self.energy_model = spk.model.NeuralNetworkPotential(
            representation=representation, input_modules=[pairwise()], output_modules=[head]
        )
        self.force_model = spk.model.NeuralNetworkPotential(
            representation=representation,
            input_modules=[pairwise()],
            output_modules=[head, spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        )
        self.model = self.force_model  # holds every parameter
        self.finish_init()
        self.energy_model.to(self.device)

    def inputs(self, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Dict[str, Tensor]:
        p = self.props
        edge_index = build_graph(pos, batch, self.config.cutoff)
        return {
            p.Z: z,
            p.R: pos.detach().clone(),
            p.idx_i: edge_index[1],
            p.idx_j: edge_index[0],
            p.offsets: pos.new_zeros(edge_index.size(1), 3),
            p.n_atoms: torch.bincount(batch, minlength=num_graphs),
            p.idx_m: batch,
        }

    def _batch_inputs(self, data: Batch) -> Dict[str, Tensor]:
        return self.inputs(data.z, data.pos, data.batch, data.num_graphs)

    def loss(self, data: Batch, with_forces: bool) -> Tensor:
        if with_forces:
            out = self.force_model(self._batch_inputs(data))
            return _mse(out["energy"], data.energy) + _mse(out["forces"], data.forces)
        return _mse(self.energy_model(self._batch_inputs(data))["energy"], data.energy)

    def energy(self, data: Batch) -> Tensor:
        return self.energy_model(self._batch_inputs(data))["energy"]

    def train_step(self, data: Batch, with_forces: bool) -> None:
        self.energy_model.train()
        super().train_step(data, with_forces)

    def inference_step(self, data: Batch) -> None:
        self.energy_model.eval()
        super().inference_step(data)

    def md_call(self, z: Tensor, pos: Tensor) -> Tuple[Tensor, Tensor]:
        self.force_model.eval()
        batch = torch.zeros(z.numel(), dtype=torch.long, device=z.device)
        out = self.force_model(self.inputs(z, pos, batch, 1))
        return out["energy"].detach(), out["forces"].detach()


def set_schnetpack_gaussians(radial: torch.nn.Module, config: ModelConfig) -> None:
    """SchNetPack's Gaussians are ``exp(-0.5 (d - offset)^2 / width^2)``: width ``sqrt(0.5 / gamma)``
    gives our gamma (its default width is the spacing of the centres)."""
    radial.widths.fill_(math.sqrt(0.5 / config.gamma))


RUNNERS: Dict[str, Type[Runner]] = {
    "ours_sparse": OursSparse,
    "ours_dense": OursDense,
    "pyg": PyGSchNet,
    "schnetpack": SchNetPack,
}


def make_runners(
    names: Sequence[str], config: ModelConfig, device: torch.device
) -> Tuple[Dict[str, Runner], Dict[str, str]]:
    """Build the named runners; those that cannot be built (SchNetPack not importable) are returned
    in the second dict with the reason."""
    runners: Dict[str, Runner] = {}
    unavailable: Dict[str, str] = {}
    for name in names:
        try:
            runners[name] = RUNNERS[name](config, device)
        except ImportError as exc:
            unavailable[name] = f"{type(exc).__name__}: {exc}"
    return runners, unavailable
