"""The exported model (pyg_schnet.io.export): one artefact for every molecule size equals the eager
model's energy and forces (float64), loads in a process where pyg_schnet and PyG cannot be imported,
and refuses what it cannot express or compute, with messages that say why."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest
import torch
from torch import Tensor, nn

from pyg_schnet import SchNet, load_model, save_model
from pyg_schnet.io import export as ex
from pyg_schnet.io.export import (
    EXPORT_FORMAT,
    METADATA_FILE,
    SchNetPotential,
    export_model,
    load_exported,
    read_metadata,
)
from pyg_schnet.models.domain import TrainingDomain

# torch 2.13 marks torch.jit.script / save / load deprecated (the TorchScript format is tested all the same)
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

#: Energies and forces of the artefact against the model (float64), relative to their scale.
TOL = 1e-10
SIZES = (3, 9, 20)


def tiny_model(cutoff: Optional[float], filter_activation: bool = True, seed: int = 0) -> SchNet:
    """A small float64 SchNet with non-trivial weights, standardisation and atom references."""
    torch.manual_seed(seed)
    model = SchNet(
        hidden_channels=16,
        num_filters=12,
        num_interactions=2,
        num_gaussians=25,
        rbf_stop=5.0,
        gamma=4.0,
        cutoff=cutoff,
        output_hidden=8,
        filter_activation=filter_activation,
    ).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.set_standardization(-1.3, 2.5, torch.randn(model.max_z, dtype=torch.float64))
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}
    model.training_domain = TrainingDomain(elements=(1, 6, 7, 8), num_structures=10, max_atoms=20)
    return model.eval()


def molecule(n: int, seed: int = 1) -> Tuple[Tensor, Tensor]:
    """``n`` atoms (H, C, N, O), each 0.9-1.7 Angstrom from the previous one: pairs from 0.9 Angstrom to
    beyond the 3 Angstrom cutoff of the tests."""
    gen = torch.Generator().manual_seed(seed + n)
    steps = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    steps = steps / steps.norm(dim=1, keepdim=True) * (0.9 + 0.8 * torch.rand(n, 1, generator=gen, dtype=torch.float64))
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (n,), generator=gen)]
    return z, torch.cumsum(steps, 0)


def assert_equal(result: Tuple[Tensor, Tensor], model: SchNet, z: Tensor, pos: Tensor, tol: float = TOL) -> None:
    energy, forces = result
    ref_e, ref_f = model.energy_and_forces(z, pos)
    assert energy.shape == () and forces.shape == pos.shape
    scale = max(float(ref_f.abs().max()), 1.0)
    assert abs(float(energy) - float(ref_e[0])) <= tol * max(abs(float(ref_e[0])), 1.0)
    assert float((forces.double() - ref_f).abs().max()) <= tol * scale


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Dict[Tuple[Optional[float], str], Tuple[SchNet, Path]]:
    """One exported file per (cutoff, format), written once for the module."""
    folder = tmp_path_factory.mktemp("export")
    out = {}
    for cutoff in (None, 3.0):
        model = tiny_model(cutoff)
        for kind, suffix in (("pt2", ".pt2"), ("torchscript", ".pt")):
            path = folder / f"cutoff{cutoff}{suffix}"
            # verified on writing once (the tests here compare every artefact with the model anyway)
            with warnings.catch_warnings():  # module-scoped: pytestmark's filter does not reach here
                warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", DeprecationWarning)
                export_model(model, path, kind=kind, verify=cutoff is not None and kind == "pt2")
            out[(cutoff, kind)] = (model, path)
    return out


@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
@pytest.mark.parametrize("cutoff", [None, 3.0])
def test_one_artefact_equals_the_model_for_every_size(artefacts, cutoff, kind):
    model, path = artefacts[(cutoff, kind)]
    potential, metadata = load_exported(path)
    assert metadata["kind"] == kind and metadata["cutoff"] == cutoff
    for n in (1, 2, *SIZES):  # one file, dynamic N (1: no pair at all)
        z, pos = molecule(n)
        if cutoff is not None and n >= 9:  # the cutoff matters: some pairs lie beyond it
            assert float(torch.pdist(pos).max()) > cutoff
        assert_equal(potential(z, pos), model, z, pos)


def test_ase_molecules_and_the_unexported_module_agree(artefacts, molecules):
    model, path = artefacts[(None, "pt2")]
    potential, _ = load_exported(path)
    eager = SchNetPotential.from_model(model)
    for z, pos in molecules:  # H2O, ethanol, benzene, CH4 from ASE, distorted
        assert_equal(potential(z, pos), model, z, pos)
        assert_equal(eager(z, pos), model, z, pos)


def test_linear_filter_layer_and_float32(tmp_path):
    """filter_activation=False (a linear second filter layer) is computed too; a float32 artefact
    agrees with the float64 model to float32 rounding."""
    model = tiny_model(3.0, filter_activation=False, seed=3)
    potential = SchNetPotential.from_model(model)
    for n in SIZES:
        z, pos = molecule(n, seed=5)
        assert_equal(potential(z, pos), model, z, pos)
    export_model(model, tmp_path / "f32.pt", kind="torchscript", dtype=torch.float32)
    f32, metadata = load_exported(tmp_path / "f32.pt")
    assert metadata["dtype"] == "float32"
    z, pos = molecule(9, seed=5)
    energy, forces = f32(z, pos.float())
    assert forces.dtype == torch.float32
    assert_equal((energy.double(), forces.double()), model, z, pos, tol=1e-5)


def test_metadata_and_plain_torch_loading(artefacts):
    model, path = artefacts[(3.0, "pt2")]
    metadata = read_metadata(path)
    assert metadata["format"] == EXPORT_FORMAT
    assert metadata["units"] == {"energy": "kcal/mol", "length": "Angstrom", "forces": "kcal/mol/Angstrom"}
    assert metadata["cutoff"] == 3.0 and metadata["periodic"] is False
    assert metadata["elements"] == [1, 6, 7, 8] and metadata["max_z"] == model.max_z
    assert metadata["dtype"] == "float64" and metadata["config"] == json.loads(json.dumps(model.config))
    from pyg_schnet import __version__

    assert metadata["pyg_schnet_version"] == __version__
    # what a user without pyg_schnet does: torch.export.load with the extra file
    extra = {METADATA_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra[METADATA_FILE]) == metadata
    z, pos = molecule(9)
    assert_equal(program.module()(z, pos), model, z, pos)
    _, ts_path = artefacts[(3.0, "torchscript")]
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(ts_path), _extra_files=extra)
    assert json.loads(extra[METADATA_FILE])["kind"] == "torchscript"


BLOCKED = ("pyg_schnet", "torch_geometric", "torch_scatter", "torch_cluster")

#: Run by ``python -I -c``: block pyg_schnet and PyG's packages (a meta path finder raising ImportError),
#: prove they cannot be imported, then load both artefacts with torch alone and save their results.
CHILD = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError("blocked in this test: " + name)
            return None

    sys.meta_path.insert(0, Block())
    for name in BLOCKED:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(name + " was imported despite the block")
    import torch
    pt2, script, inputs, out = sys.argv[1:5]
    programs = {{"pt2": torch.export.load(pt2).module(), "torchscript": torch.jit.load(script)}}
    results = {{}}
    for kind, f in programs.items():
        results[kind] = [f(z, pos) for z, pos in torch.load(inputs, weights_only=True)]
    torch.save(results, out)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("blocked modules loaded:", loaded)
    """
).format(blocked=BLOCKED)


def test_artefacts_load_and_run_without_pyg_schnet_or_pyg(artefacts, tmp_path):
    model, pt2 = artefacts[(3.0, "pt2")]
    _, script = artefacts[(3.0, "torchscript")]
    inputs = [molecule(n) for n in SIZES]
    torch.save(inputs, tmp_path / "inputs.pt")
    proc = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            CHILD,
            str(pt2),
            str(script),
            str(tmp_path / "inputs.pt"),
            str(tmp_path / "out.pt"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "blocked modules loaded: []" in proc.stdout
    results = torch.load(tmp_path / "out.pt", weights_only=True)
    for kind in ("pt2", "torchscript"):
        for (z, pos), result in zip(inputs, results[kind]):
            assert_equal(result, model, z, pos)


def test_export_from_a_model_file_and_the_command(tmp_path, capsys):
    from pyg_schnet.experiments.export_command import main

    model = tiny_model(None)
    save_model(model, tmp_path / "model.pt")
    summary = main([str(tmp_path / "model.pt"), str(tmp_path / "out" / "model.pt"), "--format", "torchscript"])
    out = capsys.readouterr().out
    assert f"to {tmp_path / 'out' / 'model.pt'} (torchscript" in out and "torch.jit.load(path)" in out
    assert summary["kind"] == "torchscript" and summary["verified"] is not None and summary["verified"] < 1e-8
    assert summary["command"][:2] == ["pyg-schnet", "export"]
    potential, _ = load_exported(tmp_path / "out" / "model.pt")
    z, pos = molecule(9)
    # model.pt holds float32 weights; the float64 artefact computes with exactly these
    assert_equal(potential(z, pos), load_model(tmp_path / "model.pt").double(), z, pos)


# ------------------------------------------------------------------------------------- bad input
class Subclassed(SchNet):
    pass


def test_models_the_exporter_cannot_express(tmp_path):
    out = tmp_path / "x.pt2"
    replaced = tiny_model(None)
    replaced.head.net[1] = nn.Tanh()
    with pytest.raises(
        ValueError, match=r"cannot be exported: model\.head\.net is not Dense -> ShiftedSoftplus -> Dense"
    ):
        export_model(replaced, out)
    sub = Subclassed(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=10)
    sub.units = {"energy": "eV", "length": "Angstrom"}
    with pytest.raises(ValueError, match="is a Subclassed, not a pyg_schnet SchNet itself"):
        export_model(sub, out)
    hooked = tiny_model(None)
    hooked.representation.interactions[0].register_forward_hook(lambda *args: None)
    with pytest.raises(ValueError, match="has forward hooks"):
        export_model(hooked, out)
    with pytest.raises(TypeError, match="expected a pyg_schnet SchNet or the path of a model.pt, got Linear"):
        export_model(nn.Linear(2, 2), out)
    with pytest.raises(ValueError, match="kind must be one of"):
        export_model(tiny_model(None), out, kind="onnx")
    unitless = tiny_model(None)
    unitless.units = None
    with pytest.raises(ValueError, match="units are unknown"):
        export_model(unitless, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_configuration_fields_it_does_not_compute():
    config = tiny_model(None).config
    assert ex._unexpressed(config) is None
    assert ex._unexpressed({**config, "new_option": 1}) == (
        "its configuration has fields the exporter does not compute: ['new_option']"
    )
    assert "output='intensive'" in ex._unexpressed({**config, "output": "intensive"})


def test_failed_verification_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "model.pt"
    out.write_bytes(b"previous")
    monkeypatch.setattr(ex, "VERIFY_TOLERANCE", -1.0)  # any difference, even 0, fails
    with pytest.raises(RuntimeError, match=r"differs from the model on a test molecule .* nothing was written"):
        export_model(tiny_model(None), out, kind="torchscript")
    assert out.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_bad_calls(artefacts, kind):
    _, path = artefacts[(None, kind)]
    potential, _ = load_exported(path)
    z, pos = molecule(3)
    # TorchScript raises its own torch.jit.Error (not a RuntimeError), with the same message
    error = RuntimeError if kind == "pt2" else torch.jit.Error
    with pytest.raises(error, match=r"z holds an atomic number outside 1\.\.99"):
        potential(torch.tensor([1, 6, 100]), pos)
    with pytest.raises(error, match=r"z holds an atomic number outside 1\.\.99"):
        potential(torch.tensor([1, 0, 6]), pos)
    same = pos.clone()
    same[2] = same[0]
    with pytest.raises(error, match=r"two atoms are at the same position \(distance 0\)"):
        potential(z, same)
    bad = pos.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(error, match="non-finite position or one beyond 10000 Angstrom"):
        potential(z, bad)
    if kind == "pt2":  # the program's own input guards
        with pytest.raises(RuntimeError, match="dtype mismatch! Expected: Double, Got: float"):
            potential(z, pos.float())
        with pytest.raises(AssertionError, match=r"pos\.size\(\)\[0\] == z\.size\(\)\[0\]"):
            potential(z, pos[:2])
    else:
        with pytest.raises(error, match="ValueError: pyg_schnet export: pos must be a float64 tensor"):
            potential(z, pos.float())
        with pytest.raises(error, match=r"ValueError: pyg_schnet export: pos must have shape \[N, 3\]"):
            potential(z, pos[:2])


def test_read_metadata_refuses_other_files(tmp_path):
    save_model(tiny_model(None), tmp_path / "model.pt")
    with pytest.raises(ValueError, match=f"holds no {METADATA_FILE}; is it an artefact written by"):
        read_metadata(tmp_path / "model.pt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an exported model"):
        load_exported(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no such exported model"):
        load_exported(tmp_path / "missing.pt2")
