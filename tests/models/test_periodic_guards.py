"""Guards of the periodic neighbour search (issue 20, item 5): degenerate cells are refused before the
search (which would otherwise run for hours), atoms too close to an image are refused, the memory
estimate of the search and of the model's graph; legitimate cells keep ASE's pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pyg_schnet import SchNet, backend
from pyg_schnet.graph import build_periodic_pairs, edge_distances, memory, mirror, periodic

CUTOFF = 4.0


def tilted_cell(t: float) -> torch.Tensor:
    """A 3 Angstrom cube whose third vector is tilted onto the first: heights 3 t, 3, 3 t."""
    return torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.0 * (1 - t), 0.0, 3.0 * t]], dtype=torch.float64)


def small_model(cutoff: float = CUTOFF) -> SchNet:
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=cutoff).double()


@pytest.fixture
def no_search(monkeypatch):
    """Fail the test if the neighbour search starts (a refused structure must never reach it)."""

    def started(*args, **kwargs):
        raise AssertionError("the neighbour search was started")

    monkeypatch.setattr(periodic, "neighbor_list", started)


def test_nearly_degenerate_cell_is_refused_before_the_search(no_search):
    pos = torch.tensor([[0.1, 0.2, 0.0], [1.5, 1.5, 0.0001]], dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"structure 0: the cell .* is nearly degenerate for the neighbour search: its heights "
        r"\(distances between lattice planes\) are \[0\.0003, 3, 0\.0003\] Angstrom along periodic axes \[0, 1, 2\];"
        r" the most tilted lattice vector is 0\.00573 degrees from the plane of the others, so the cutoff 4 "
        r"Angstrom needs \[13333, 2, 13334\] images on each side of each axis, 3\.56e\+09 image cells, more than "
        r"the limit pyg_schnet\.graph\.periodic\.MAX_IMAGE_CELLS = 1,000,000: use a reduced cell .*minkowski_reduce",
    ):
        small_model()(torch.tensor([6, 6]), pos, None, tilted_cell(1e-4)[None], torch.ones(1, 3, dtype=torch.bool))


def test_lattice_vector_shorter_than_the_minimum_is_refused_before_the_search(no_search):
    cell = torch.diag(torch.tensor([3.0, 0.003, 3.0], dtype=torch.float64))
    with pytest.raises(
        ValueError,
        match=r"structure 1: lattice vector 1 of the cell .* is 0\.003 Angstrom long, so every atom is that close "
        r"to its own periodic image \(closer than 0\.01 Angstrom\)",
    ):
        small_model()(
            torch.tensor([6, 6, 8]),
            torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.2, 0.0, 1.0]], dtype=torch.float64),
            torch.tensor([0, 0, 1]),
            torch.stack([3.0 * torch.eye(3, dtype=torch.float64), cell]),
            torch.ones(2, 3, dtype=torch.bool),
        )


def test_atom_close_to_its_own_image_through_a_short_lattice_combination():
    # a1 and a3 differ by (0.002, 0, 0.002): each vector is 3 A long, their difference 0.0028 A; with a
    # 0.5 A cutoff the search is small enough to run, and finds the atom on its own image
    cell = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.002, 0.0, 0.002]], dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"atom 0 of structure 0 is 0\.00283 Angstrom from its own periodic image shifted by "
        r"\[-?1, 0, -?1\] lattice vectors, closer than 0\.01 Angstrom",
    ):
        small_model(0.5)(
            torch.tensor([6]),
            torch.tensor([[0.3, 0.4, 0.5]], dtype=torch.float64),
            None,
            cell[None],
            torch.tensor([[True, False, True]]),
        )


def test_atom_close_to_an_image_of_another_atom():
    cell = 3.0 * torch.eye(3, dtype=torch.float64)
    pos = torch.tensor([[0.5, 0.5, 0.5], [0.503, 3.5, 0.5]], dtype=torch.float64)  # atom 1 is 0.003 A from 0 + a2
    with pytest.raises(
        ValueError,
        match=r"atoms 0 and 1 of structure 0 are 0\.003 Angstrom apart \(atom 1 near atom 0.s image shifted by "
        r"\[0, 1, 0\] lattice vectors\), closer than 0\.01 Angstrom",
    ):
        small_model()(torch.tensor([1, 1]), pos, None, cell[None], torch.ones(1, 3, dtype=torch.bool))


def test_search_memory_guard(monkeypatch, no_search):
    rng = np.random.default_rng(0)
    pos = torch.as_tensor(rng.uniform(0, 4, (64, 3)))
    cell = 4.0 * torch.eye(3, dtype=torch.float64)
    # 64 atoms in 64 A^3 within 4 A: 64 * 268 / 2 = 8,580 pairs, 1.7 MB for the search
    assert periodic.expected_pairs(64, cell.numpy(), [True] * 3, CUTOFF) == pytest.approx(
        64 * 64 * 4 / 3 * np.pi * 64 / 64 / 2
    )
    monkeypatch.setattr(backend, "MAX_GRAPH_BYTES", 1_000_000)
    with pytest.raises(
        MemoryError,
        match=r"the periodic neighbour search of this batch would return about 8\.58e\+03 pairs .* structure 0 "
        r"\(64 atoms, .* 268 neighbours per atom within 4 Angstrom",
    ):
        build_periodic_pairs(
            pos, torch.zeros(64, dtype=torch.long), cell[None], torch.ones(1, 3, dtype=torch.bool), CUTOFF
        )


def test_model_memory_estimate_of_a_periodic_graph():
    batch = torch.zeros(64, dtype=torch.long)
    cell = (4.0 * torch.eye(3, dtype=torch.float64))[None]
    pbc = torch.ones(1, 3, dtype=torch.bool)
    pairs = memory.periodic_graph_pairs(batch, cell, pbc, CUTOFF)
    assert pairs == pytest.approx(64 * 64 * 4 / 3 * np.pi / 2)
    # the paper's per-pair cost: float32, 300 Gaussians, 64 filters, 3 blocks, with autograd
    assert memory.graph_bytes(pairs, 300, 64, 3, torch.float32, True) == int(pairs * (1200 + 1920) * 4)
    with pytest.raises(
        MemoryError,
        match=r"the periodic graph of this batch \(64 atoms, cutoff 4 Angstrom\) holds "
        r"about 8\.58e\+03 pairs \(268 neighbours per atom\) and needs about 0\.1 GiB",
    ):
        memory.check_periodic_memory(batch, cell, pbc, CUTOFF, 300, 64, 3, torch.float32, True, limit=2**20)
    memory.check_periodic_memory(batch, cell, pbc, CUTOFF, 300, 64, 3, torch.float32, True, limit=2**30)
    # a degenerate cell is named as such before any memory estimate
    with pytest.raises(ValueError, match=r"structure 0: the cell .* is nearly degenerate for the neighbour search"):
        memory.check_periodic_memory(batch, tilted_cell(1e-4)[None], pbc, CUTOFF, 300, 64, 3, torch.float32, True)


def test_expected_pairs_match_the_search_on_bulk_and_bound_a_slab():
    rng = np.random.default_rng(1)
    cell = np.array([[12.0, 0.0, 0.0], [2.0, 11.0, 0.0], [-1.5, 1.0, 10.0]])
    pos = torch.as_tensor(rng.uniform(0, 1, (300, 3)) @ cell)
    for pbc, lo, hi in (([True] * 3, 0.9, 1.1), ([True, True, False], 0.0, 1.0)):
        flags = torch.tensor([pbc])
        pairs, _ = build_periodic_pairs(
            pos, torch.zeros(300, dtype=torch.long), torch.as_tensor(cell)[None], flags, 5.0
        )
        ratio = pairs.size(1) / periodic.expected_pairs(300, cell, pbc, 5.0)
        assert lo < ratio < hi, (pbc, ratio)


def test_lattice_heights():
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 5.0, 0.0], [0.5, -1.0, 6.0]])
    volume = abs(np.linalg.det(cell))
    faces = [
        np.linalg.norm(np.cross(cell[1], cell[2])),
        np.linalg.norm(np.cross(cell[2], cell[0])),
        np.linalg.norm(np.cross(cell[0], cell[1])),
    ]
    np.testing.assert_allclose(periodic.lattice_heights(cell, [True] * 3), volume / np.array(faces), rtol=1e-12)
    slab = cell.copy()
    slab[2] = 0.0  # a slab may leave its non-periodic vector zero
    area = np.linalg.norm(np.cross(cell[0], cell[1]))
    np.testing.assert_allclose(
        periodic.lattice_heights(slab, [True, True, False]),
        [area / np.linalg.norm(cell[1]), area / np.linalg.norm(cell[0]), np.inf],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        periodic.lattice_heights(cell, [False, True, False]), [np.inf, np.linalg.norm(cell[1]), np.inf]
    )


@pytest.mark.parametrize("use_vesin", [True, False], ids=["vesin", "ase"])
def test_tilted_but_searchable_cell_gives_ases_pairs_and_those_of_its_reduced_cell(use_vesin, monkeypatch):
    from ase.geometry import minkowski_reduce
    from ase.neighborlist import primitive_neighbor_list

    if use_vesin and not periodic.USE_VESIN:
        pytest.skip("vesin is not installed")
    monkeypatch.setattr(periodic, "USE_VESIN", use_vesin)
    cell = tilted_cell(0.3)  # heights 0.9, 3, 0.9: 19 x 5 x 19 image cells, well inside the limit
    pos = torch.as_tensor(np.random.default_rng(2).uniform(0, 1, (3, 3)) @ cell.numpy())
    batch, pbc = torch.zeros(3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool)
    pairs, shifts = build_periodic_pairs(pos, batch, cell[None], pbc, CUTOFF)
    ours = {(i, j, *s) for (i, j), s in zip(mirror(pairs).T.tolist(), torch.cat([shifts, -shifts]).long().tolist())}
    i, j, S = primitive_neighbor_list("ijS", [True] * 3, cell.numpy(), pos.numpy(), CUTOFF)
    assert ours == {(a, b, *s) for a, b, s in zip(i.tolist(), j.tolist(), S.tolist())}
    # the reduced cell (the fix the error message advises) has the same pairs, offsets mapped by op
    reduced, op = minkowski_reduce(cell.numpy())
    rpairs, rshifts = build_periodic_pairs(pos, batch, torch.as_tensor(reduced)[None], pbc, CUTOFF)
    mapped = (torch.cat([rshifts, -rshifts]).long() @ torch.as_tensor(op)).tolist()
    assert ours == {(i, j, *s) for (i, j), s in zip(mirror(rpairs).T.tolist(), mapped)}
    d = edge_distances(pos, pairs, shifts, cell[None], batch)
    rd = edge_distances(pos, rpairs, rshifts, torch.as_tensor(reduced)[None], batch)
    assert sorted(d.tolist()) == pytest.approx(sorted(rd.tolist()), abs=1e-12)
    assert len(list(itertools.islice(ours, 1)))  # the structure has pairs at all


def test_model_refuses_a_periodic_graph_beyond_its_memory_limit():
    model = small_model()
    model.representation.max_graph_bytes = 2**20
    pos = torch.as_tensor(np.random.default_rng(0).uniform(0, 4, (64, 3)))
    cell = (4.0 * torch.eye(3, dtype=torch.float64))[None]
    with pytest.raises(MemoryError, match=r"the periodic graph of this batch \(64 atoms, cutoff 4 Angstrom\)"):
        model(torch.full((64,), 6), pos, None, cell, torch.ones(1, 3, dtype=torch.bool))
