"""No host synchronisation in a training step or an MD call (issue 18), counted on any machine.

A training step (forward, Eq. 5 with the force term by double backward, optimizer, schedule and EMA as
the trainer makes them) must not read the device at all, and the calculator's MD call only for its
two results (energy, forces). The counter (``tests/sync_counter.py``) records what would stall a GPU;
on the CPU it counts the same calls. The batches are real MD17 ethanol frames.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from sync_counter import SyncCounter
from torch_geometric.data import Batch, Data

from pyg_schnet import SchNet
from pyg_schnet.batching.dense import to_dense, to_sparse
from pyg_schnet.graph import full_pairs
from pyg_schnet.graph.pairs import HostLayout
from pyg_schnet.train import trainer as training
from pyg_schnet.train.loss import energy_force_loss
from pyg_schnet.train.predict import predict
from pyg_schnet.validation import check_inputs, inputs_trusted, trusted_inputs

ETHANOL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "md17" / "md17_ethanol.npz"
RHO = 100.0


@pytest.fixture(scope="module")
def frames():
    if not ETHANOL.exists():
        pytest.skip(f"the real MD17 ethanol frames are not here ({ETHANOL.resolve()}; see shared/data/README.md)")
    with np.load(ETHANOL) as data:
        return {key: data[key] for key in ("R", "z", "E", "F")}


def ethanol_batch(frames, first=0, count=32, dtype=torch.float32, sizes=None):
    """A PyG batch of ``count`` ethanol frames; ``sizes`` keeps only the first atoms of each (mixed sizes)."""
    items = []
    for k in range(count):
        n = 9 if sizes is None else sizes[k % len(sizes)]
        f = first + k
        items.append(
            Data(
                z=torch.as_tensor(frames["z"][:n]),
                pos=torch.as_tensor(frames["R"][f, :n], dtype=dtype),
                energy=torch.as_tensor(frames["E"][f], dtype=torch.float64),
                force=torch.as_tensor(frames["F"][f, :n], dtype=dtype),
            )
        )
    return Batch.from_data_list(items)


class Step:
    """One training step as :meth:`pyg_schnet.train.trainer.Trainer._train_step` makes it, with the
    batch's host layout taken before the transfer and the load-time-validated data trusted."""

    def __init__(self, cutoff, forces, batching):
        torch.manual_seed(0)
        self.model = SchNet(cutoff=cutoff).train()
        self.model.set_standardization(-97196.0 / 9, 0.5)
        params = list(self.model.parameters())
        self.optimizer = training.adam(params, 1e-4)
        self.scheduler = training.paper_lr_schedule(self.optimizer)
        self.ema_update = training.EMAUpdate(training.exponential_moving_average(self.model), self.model, 0.99)
        self.forces, self.batching = forces, batching

    def __call__(self, batch):
        layout = HostLayout.of_batch(batch)
        batch = batch.to("cpu")
        with trusted_inputs():
            energy, forces = predict(self.model, batch, self.forces, self.batching, layout=layout)
        rho = RHO if self.forces else 0.0
        loss = energy_force_loss(energy, batch.energy, batch.batch, rho, forces, batch.force if self.forces else None)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.ema_update()
        return loss.detach()


@pytest.mark.parametrize("batching", ["sparse", "dense"])
@pytest.mark.parametrize("forces", [True, False], ids=["E+F", "E"])
@pytest.mark.parametrize("cutoff", [None, 5.0], ids=["paper", "cutoff5"])
def test_training_step_never_reads_the_device(frames, cutoff, forces, batching):
    step = Step(cutoff, forces, batching)
    step(ethanol_batch(frames, 0))  # warm-up (optimizer state, EMA copy)
    batch = ethanol_batch(frames, 32)
    with SyncCounter() as syncs:
        loss = step(batch)
    assert len(syncs) == 0, syncs.report()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("batching", ["sparse", "dense"])
@pytest.mark.parametrize("cutoff", [None, 2.5], ids=["paper", "cutoff2.5"])
def test_layout_path_computes_what_the_checked_path_computes(frames, cutoff, batching):
    """Host layout + trusted inputs: the same energies, forces and weight gradients (float64) as the
    plain call on a batch of mixed sizes (1 to 9 atoms); under a 2.5 A cutoff the all-pairs graph
    holds pairs beyond it, whose filters are zero."""
    batch = ethanol_batch(frames, 100, count=12, dtype=torch.float64, sizes=[9, 1, 5, 9, 2, 7])
    results = []
    for use_layout in (False, True):
        torch.manual_seed(3)
        model = SchNet(cutoff=cutoff).double().train()
        layout = HostLayout.of_batch(batch) if use_layout else None
        if use_layout:
            with trusted_inputs():
                energy, forces = predict(model, batch, True, batching, layout=layout)
        elif batching == "dense":  # PyG's padding and a boolean selection, every check on
            dense = to_dense(batch)
            energy, forces = model.energy_and_forces_dense(dense.z, dense.pos, dense.mask)
            forces = to_sparse(forces, dense.mask)
        else:
            energy, forces = model.energy_and_forces(batch.z, batch.pos, batch.batch)
        loss = energy_force_loss(energy, batch.energy, batch.batch, RHO, forces, batch.force)
        grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
        results.append((energy.detach(), forces.detach(), [g for g in grads if g is not None]))
    (e0, f0, g0), (e1, f1, g1) = results
    torch.testing.assert_close(e1, e0, rtol=0, atol=1e-9)
    torch.testing.assert_close(f1, f0, rtol=0, atol=1e-9)
    assert len(g0) == len(g1)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_host_layout_of_a_pyg_batch(frames):
    batch = ethanol_batch(frames, 0, count=6, dtype=torch.float64, sizes=[9, 1, 4])
    layout = HostLayout.of_batch(batch)
    assert layout.counts == (9, 1, 4, 9, 1, 4) and layout.num_graphs == 6 and layout.largest == 9
    # the same pairs in the same order as the graph built on the device
    assert torch.equal(layout.all_pairs(torch.device("cpu")), full_pairs(batch.batch))
    pairs = full_pairs(batch.batch)
    d = (batch.pos[pairs[1]] - batch.pos[pairs[0]]).norm(dim=1)
    assert layout.distance_range == pytest.approx((float(d.min()), float(d.max())), rel=1e-15)
    assert layout.window_range(2.5) == (layout.distance_range[0], 2.5)
    # the offsets stay on the CPU when the batch moves; the distances are then unknown
    moved = HostLayout.of_batch(batch.clone().to("meta"))  # Batch.to moves in place
    assert moved.counts == layout.counts and moved.distance_range is None
    assert moved.window_range(None) == (0.0, float("inf"))
    assert HostLayout.of_batch(Data(z=batch.z, pos=batch.pos)) is None
    with pytest.raises(ValueError, match="describes 28 atoms in 6 molecules, but the inputs have 27"):
        SchNet()(batch.z[:-1], batch.pos[:-1].float(), batch.batch[:-1], layout=layout)


def test_trusted_inputs_is_one_switch_per_thread():
    z, pos = torch.tensor([6, 1]), torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]])
    with pytest.raises(ValueError, match="atom 1 .* non-finite position"):
        check_inputs(z, pos, None, 100)
    seen = []
    with trusted_inputs():
        assert inputs_trusted()
        check_inputs(z, pos, None, 100)  # values not checked
        with pytest.raises(ValueError, match="pos must have shape"):  # shapes still are
            check_inputs(z, pos[:, :2], None, 100)
        worker = threading.Thread(target=lambda: seen.append(inputs_trusted()))
        worker.start()
        worker.join()
    assert seen == [False]
    assert not inputs_trusted()
    with pytest.raises(ValueError, match="atom 1"):  # and the model checks again after the block
        SchNet()(z, pos)


def test_counter_sees_each_kind_of_synchronisation():
    t = torch.arange(6.0)
    mask = t > 2
    cases = {
        "_local_scalar_dense": lambda: float(t.sum()),
        "Tensor.tolist": lambda: t.tolist(),
        "Tensor.numpy": lambda: t.numpy(),
        "aten.nonzero": lambda: mask.nonzero(),
        "aten.index.Tensor": lambda: t[mask],
        "aten.bincount": lambda: torch.bincount(t.long()),
        "aten.repeat_interleave": lambda: torch.repeat_interleave(t.long()),
    }
    for name, fn in cases.items():
        with SyncCounter() as syncs:
            fn()
        assert len(syncs) == 1 and name in syncs.records[0].what, (name, syncs.report())
        assert "test_host_syncs.py" in syncs.records[0].where
    with SyncCounter() as syncs:  # known sizes: no synchronisation
        torch.repeat_interleave(t.long(), 2, output_size=12)
        t.index_select(0, torch.tensor([1, 2]))
    assert len(syncs) == 0, syncs.report()
    assert torch.Tensor.tolist is not None and "patched" not in torch.Tensor.tolist.__name__


def test_host_readers_refuse_device_tensors():
    """The functions the counter trusts to read only the host check that they do."""
    with pytest.raises(ValueError, match="on the CPU, got meta"):
        HostLayout.from_host_positions([2], torch.zeros(2, 3, device="meta"))
    from pyg_schnet.models.md_evaluator import MDEvaluator

    ev = MDEvaluator(SchNet().double().eval(), torch.tensor([8, 1, 1]))
    with pytest.raises(ValueError, match="on the CPU, got meta"):
        ev._host_checks(torch.zeros(3, 3, device="meta"))


@pytest.mark.parametrize("method", ["exact", "tabulated"])
def test_md_call_transfers_only_its_results(frames, method):
    from ase import Atoms

    from pyg_schnet.simulation.ase import SchNetCalculator

    torch.manual_seed(0)
    model = SchNet()
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    atoms = Atoms(numbers=frames["z"], positions=frames["R"][0])
    atoms.calc = SchNetCalculator(model, method=method)
    atoms.get_forces()  # first call: evaluator, pair list, table
    atoms.positions = frames["R"][1]
    with SyncCounter() as syncs:
        forces = atoms.get_forces()
    assert len(syncs) <= 2, syncs.report()
    assert all("simulation/ase.py" in r.where for r in syncs.records), syncs.report()
    assert np.isfinite(forces).all()


@pytest.mark.parametrize("batching", ["sparse", "dense"])
def test_the_trainers_own_step_and_bookkeeping_never_read_the_device(frames, tmp_path, batching):
    """Trainer._train_step, the error accumulator and the non-finite watch of the epoch loop: 0 reads; the
    watch is read every NON_FINITE_CHECK_EVERY mini-batches, and that read finds a NaN loss's mini-batch."""
    data = [ethanol_batch(frames, k, count=1).get_example(0) for k in range(40)]
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=1, num_gaussians=30, cutoff=5.0)
    config = training.TrainConfig(batch_size=8, max_epochs=1, progress=False, rho=RHO, batching=batching)
    trainer = training.Trainer(model, data[:32], data[32:], tmp_path, config, units={"energy": "kcal/mol"})
    trainer._resolve_batching()
    batches = list(trainer.train_loader)
    acc = training.ErrorAccumulator(rho=RHO)
    watch = training.FirstNonFinite()
    trainer._train_step(batches[0])  # warm-up (optimizer state, EMA copy)
    with SyncCounter() as syncs:
        batch, energy, forces, loss = trainer._train_step(batches[1])
        acc.update(energy, batch.energy, batch.batch, forces, batch.force)
        watch.add(loss)
    assert len(syncs) == 0, syncs.report()
    assert watch.first() is None and acc.compute()["num_molecules"] == 8
    watch.add(torch.tensor(float("nan")))
    watch.add(torch.tensor(float("inf")))
    assert watch.first()[0] == 2 and np.isnan(watch.first()[1])  # the first bad one, 1-based
