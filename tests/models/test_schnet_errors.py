"""Bad input gets a clear error naming the atom at fault, never NaN or a silent fix."""

import pytest
import torch

from pyg_schnet import SchNet


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10).eval()


def water():
    return torch.tensor([8, 1, 1]), torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])


def test_nan_and_inf_positions(model):
    z, pos = water()
    pos[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"atom 2 \(molecule 0\) has a non-finite position"):
        model(z, pos)
    pos[2, 1] = float("inf")
    with pytest.raises(ValueError, match="atom 2"):
        model.energy_and_forces(z, pos)


@pytest.mark.parametrize("bad", [0, 100, -3])
def test_atomic_number_outside_embedding(model, bad):
    z, pos = water()
    z[1] = bad
    with pytest.raises(ValueError, match=rf"atom 1 \(molecule 0\) has atomic number {bad}, outside 1..99"):
        model(z, pos)


def test_mismatched_lengths(model):
    z, pos = water()
    with pytest.raises(ValueError, match="z has 2 atoms but pos has 3"):
        model(z[:2], pos)
    with pytest.raises(ValueError, match="batch has 2 entries"):
        model(z, pos, torch.tensor([0, 0]))
    with pytest.raises(ValueError, match=r"pos must have shape \[num_atoms, 3\]"):
        model(z, pos[:, :2])
    with pytest.raises(ValueError, match="integer"):
        model(z.float(), pos)


def test_unsorted_batch(model):
    z, pos = water()
    with pytest.raises(ValueError, match="atom 2 has molecule 0 after molecule 1"):
        model(z, pos, torch.tensor([0, 1, 0]))


def test_coincident_atoms(model):
    z, pos = water()
    pos[2] = pos[0]
    with pytest.raises(ValueError, match="atoms 0 and 2 of molecule 0 are at the same position"):
        model(z, pos)
    # the same position in two different molecules is fine
    z2 = torch.cat([z[:2], z[:2]])
    p2 = torch.cat([pos[:2], pos[:2]])
    assert torch.isfinite(model(z2, p2, torch.tensor([0, 0, 1, 1]))).all()


def test_neighbour_limit_raises_instead_of_truncating():
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10, max_num_neighbors=1)
    z, pos = water()
    with pytest.raises(ValueError, match=r"atom 0 \(molecule 0\) has 2 neighbours.*max_num_neighbors=1"):
        model(z, pos)


def test_unknown_preset_option():
    with pytest.raises(TypeError, match="unknown SchNet options"):
        SchNet.from_paper(hidden=3)


# ------------------------------------------------------------------- issue 8: model inputs and sizes
def test_absurd_coordinates_are_refused_not_nan_forces(model):
    # 1e19 Angstrom gave a finite energy with NaN forces
    z, pos = water()
    with pytest.raises(ValueError, match=r"atom 1 \(molecule 0\) has position .*beyond \+-10000 Angstrom"):
        model.energy_and_forces(z, pos * 1e19)
    pos[2, 0] = 2.0e4
    with pytest.raises(ValueError, match=r"atom 2 \(molecule 0\).*MAX_ABS_POSITION"):
        model(z, pos)


@pytest.mark.parametrize(
    "batch, match",
    [
        ([0, 0, 0, 2, 2, 2], r"atom 3 has molecule 2 after molecule 0, so molecule 1 would have no atoms"),
        ([0, 0, 0, 10**8, 10**8, 10**8], r"atom 3 has molecule 100000000 after molecule 0"),
        ([1, 1, 1, 2, 2, 2], r"atom 0 belongs to molecule 1, so molecule 0 would have no atoms"),
        ([-1, -1, -1, 0, 0, 0], r"batch is negative at atom 0"),
    ],
)
def test_batch_with_gaps_is_refused(model, batch, match):
    # [0]*3 + [2]*3 returned 3 energies for 2 molecules; [0]*3 + [1e8]*3 allocated 1e8 energies
    z, pos = water()
    z2, pos2 = torch.cat([z, z]), torch.cat([pos, pos + 5.0])
    with pytest.raises(ValueError, match=match):
        model(z2, pos2, torch.tensor(batch))
    assert model(z2, pos2, torch.tensor([0, 0, 0, 1, 1, 1])).shape == (2,)


def test_float64_positions_are_converted_and_forces_reach_the_callers_tensor(model):
    z, pos = water()
    pos64 = pos.double().requires_grad_(True)
    energy = model(z, pos64)
    assert energy.dtype == torch.float32
    torch.testing.assert_close(energy, model(z, pos))
    (grad,) = torch.autograd.grad(energy.sum(), pos64)
    assert grad.dtype == torch.float64 and torch.isfinite(grad).all() and grad.abs().sum() > 0
    e64, f64 = model.energy_and_forces(z, pos.double())
    e32, f32 = model.energy_and_forces(z, pos)
    torch.testing.assert_close(f64.float(), f32)
    torch.testing.assert_close(e64, e32)


def test_small_integer_dtypes_of_z_and_batch_are_accepted(model):
    # uint8 z used to be taken as a boolean mask deep in the model
    z, pos = water()
    expected = model(z, pos)
    torch.testing.assert_close(model(z.to(torch.uint8), pos), expected)
    torch.testing.assert_close(model(z.int(), pos, torch.zeros(3, dtype=torch.int32)), expected)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda z, p: (z, p, torch.zeros(3, dtype=torch.bool)),
            ValueError,
            r"batch must be a 1-D integer tensor.*torch\.bool",
        ),
        (lambda z, p: (z, p.long(), None), ValueError, r"pos must be a floating-point tensor.*torch\.int64"),
        (lambda z, p: (z.numpy(), p, None), TypeError, r"z must be a torch\.Tensor, got numpy\.ndarray"),
        (lambda z, p: (z, p.numpy(), None), TypeError, r"pos must be a torch\.Tensor, got numpy\.ndarray"),
        (lambda z, p: (z, p, [0, 0, 0]), TypeError, r"batch must be a torch\.Tensor, got builtins\.list"),
    ],
)
def test_wrong_types_name_the_argument(model, make, error, match):
    z, pos, batch = make(*water())
    with pytest.raises(error, match=match):
        model(z, pos, batch)


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(hidden_channels=0), r"SchNet: hidden_channels must be a positive integer, got 0"),
        (dict(num_filters=-4), r"num_filters must be a positive integer"),
        (dict(num_gaussians=0), r"num_gaussians must be a positive integer"),
        (dict(output_hidden=0), r"output_hidden must be a positive integer"),
        (dict(num_interactions=-1), r"num_interactions must be an integer >= 0"),
        (dict(max_z=0), r"max_z .* must be an integer >= 2, got 0"),
        (dict(hidden_channels=8.0), r"hidden_channels must be a positive integer, got 8\.0"),
        (dict(cutoff=float("nan")), r"cutoff must be a finite number in \(0, inf\), got nan"),
        (dict(gamma=0.0), r"gamma must be a finite number"),
        (dict(rbf_stop=0.0), r"rbf_stop \(0\.0\) must exceed rbf_start"),
        (dict(max_num_neighbors=0), r"max_num_neighbors must be a positive integer"),
    ],
)
def test_non_positive_sizes_are_refused_at_construction(override, match):
    with pytest.raises(ValueError, match=match):
        SchNet(**{**dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10), **override})


def test_non_finite_standardization_is_refused():
    model = SchNet(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10)
    with pytest.raises(ValueError, match=r"standardization: mean must be a finite number, got nan"):
        model.set_standardization(float("nan"), 1.0)
    with pytest.raises(ValueError, match=r"standardization: std must be a finite number in \(0, inf\)"):
        model.set_standardization(0.0, float("inf"))
    ref = torch.zeros(100)
    ref[6] = float("nan")
    with pytest.raises(ValueError, match="atomref of atomic number 6 is nan"):
        model.set_standardization(0.0, 1.0, ref)
    assert float(model.mean) == 0.0 and float(model.std) == 1.0  # nothing was half-set


def test_dense_path_refuses_absurd_coordinates_and_converts_dtypes(model):
    from pyg_schnet.batching import to_dense_atoms

    z, pos = water()
    dense = to_dense_atoms(z, pos)
    with pytest.raises(ValueError, match=r"molecule 0, atom slot 1 has position .*MAX_ABS_POSITION"):
        model.energy_and_forces_dense(dense.z, dense.pos * 1e19, dense.mask)
    expected = model.forward_dense(dense.z, dense.pos, dense.mask)
    torch.testing.assert_close(model.forward_dense(dense.z.to(torch.uint8), dense.pos.double(), dense.mask), expected)
    torch.testing.assert_close(expected, model(z, pos))
