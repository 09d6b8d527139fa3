"""Writes ``tests/golden/schnet_golden.json``: reference numbers of fixed SchNet models (not a test module).

The numbers pin what the model computes, so a refactor that shifts two of our own paths together
(sparse and dense, model and MD evaluator) cannot pass unnoticed. They were written once, before the
layered package of 0.3.0 moved any file, and must only be rewritten on purpose (a change of the
model's mathematics), never to make a failing test pass::

    python -m tests.golden.generate --write

**Weights.** Every floating-point parameter is filled from a generator seeded by the CRC-32 of its
``state_dict`` name, so the weights depend on the names (the format of ``model.pt``) and not on the
order in which modules are built or :func:`torch.manual_seed` draws:
``w = scale * N(0, 1)`` with ``scale = 1 / sqrt(fan_in)`` for matrices, 1 for the embedding and 0.1
for biases. The standardisation is set to ``mean = -1.5``, ``std = 2.0`` and atom references
``-0.25 Z`` (energy unit per atom).

**Inputs.** A batch of two molecules (ethanol and a distorted methane, positions in Angstrom written
into the file) and, for the cutoff configurations, one periodic cell. All in float64.

**Outputs.** Energies per structure, forces ``-dE/dpos``, stress of the periodic cell, and for the
force-training loss ``L = sum_g (E_g - E_ref)^2 + rho/N sum |F - F_ref|^2`` (rho = 100, references
zero) the gradient with respect to every parameter, reduced to its norm and its dot product with a
fixed vector (seeded by the CRC-32 of ``"probe:" + name``).
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from pathlib import Path
from typing import Any, Dict, List

import torch

GOLDEN_FILE = Path(__file__).with_name("schnet_golden.json")

#: name -> SchNet keyword arguments (the benchmark configurations and a small periodic one).
CONFIGS: Dict[str, Dict[str, Any]] = {
    "paper": dict(
        hidden_channels=64,
        num_filters=64,
        num_interactions=3,
        num_gaussians=301,
        rbf_start=0.0,
        rbf_stop=30.0,
        gamma=10.0,
        cutoff=None,
        max_z=100,
        output_hidden=32,
    ),
    "common": dict(
        hidden_channels=128,
        num_filters=128,
        num_interactions=6,
        num_gaussians=50,
        rbf_start=0.0,
        rbf_stop=10.0,
        gamma=10.0,
        cutoff=10.0,
        max_z=100,
        output_hidden=64,
    ),
    "cutoff5": dict(
        hidden_channels=32,
        num_filters=24,
        num_interactions=2,
        num_gaussians=50,
        rbf_start=0.0,
        rbf_stop=5.0,
        gamma=10.0,
        cutoff=5.0,
        max_z=100,
        output_hidden=16,
    ),
}

#: Ethanol (ASE's G2 geometry) and a distorted methane, Angstrom.
MOLECULES: List[Dict[str, Any]] = [
    {
        "z": [6, 6, 8, 1, 1, 1, 1, 1, 1],
        "pos": [
            [1.168181, -0.400382, 0.0],
            [0.0, 0.348175, 0.0],
            [-1.190961, -0.45209, 0.0],
            [-1.947325, 0.14707, 0.0],
            [-0.031232, 0.998581, 0.886995],
            [-0.031232, 0.998581, -0.886995],
            [2.129295, 0.130419, 0.0],
            [1.134933, -1.040462, 0.886519],
            [1.134933, -1.040462, -0.886519],
        ],
    },
    {
        "z": [6, 1, 1, 1, 1],
        "pos": [
            [0.02, -0.01, 0.03],
            [0.66, 0.61, 0.64],
            [-0.6, -0.66, 0.61],
            [-0.65, 0.6, -0.62],
            [0.61, -0.63, -0.68],
        ],
    },
]

#: A periodic cell (triclinic, periodic along all three axes): a water-like trimer, Angstrom.
PERIODIC: Dict[str, Any] = {
    "z": [8, 1, 1, 8, 1, 1],
    "pos": [[0.1, 0.2, 0.0], [0.9, 0.3, 0.1], [-0.2, 1.0, 0.2], [2.1, 2.0, 1.9], [2.8, 2.4, 1.6], [1.7, 2.7, 2.3]],
    "cell": [[4.2, 0.0, 0.0], [0.4, 4.0, 0.0], [0.2, -0.3, 3.9]],
    "pbc": [True, True, True],
}

RHO = 100.0


def fill_parameters(model: torch.nn.Module) -> None:
    """Name-seeded weights and a fixed standardisation (see the module docstring)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            values = torch.randn(param.shape, generator=gen, dtype=torch.float64)
            if name.endswith("bias"):
                scale = 0.1
            elif "embedding" in name:
                scale = 1.0
            else:
                scale = 1.0 / math.sqrt(param.shape[-1])
            param.copy_(scale * values)
        max_z = model.atomref.numel()
        model.set_standardization(-1.5, 2.0, -0.25 * torch.arange(max_z, dtype=torch.float64))


def probe(name: str, shape: torch.Size) -> torch.Tensor:
    gen = torch.Generator().manual_seed(zlib.crc32(f"probe:{name}".encode()))
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def build_model(config: Dict[str, Any]) -> torch.nn.Module:
    from pyg_schnet import SchNet

    model = SchNet(**config).double()
    fill_parameters(model)
    return model


def molecule_batch() -> Dict[str, torch.Tensor]:
    z = torch.tensor([a for m in MOLECULES for a in m["z"]], dtype=torch.long)
    pos = torch.tensor([p for m in MOLECULES for p in m["pos"]], dtype=torch.float64)
    batch = torch.cat([torch.full((len(m["z"]),), g, dtype=torch.long) for g, m in enumerate(MOLECULES)])
    return {"z": z, "pos": pos, "batch": batch}


def loss_gradients(
    model: torch.nn.Module, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor
) -> Dict[str, List[float]]:
    """``{name: [norm, probe . grad]}`` of the force-training loss (references zero)."""
    model.train()
    energy, forces = model.energy_and_forces(z, pos, batch)
    loss = energy.square().sum() + RHO / pos.size(0) * forces.square().sum()
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()], allow_unused=True)
    out = {}
    for name, grad in zip(names, grads):
        g = torch.zeros_like(dict(model.named_parameters())[name]) if grad is None else grad
        out[name] = [float(g.norm()), float((probe(name, g.shape) * g).sum())]
    model.eval()
    return out


def compute() -> Dict[str, Any]:
    torch.set_num_threads(1)
    inputs = molecule_batch()
    golden: Dict[str, Any] = {"molecules": MOLECULES, "periodic": PERIODIC, "rho": RHO, "configs": {}}
    for name, config in CONFIGS.items():
        model = build_model(config).eval()
        energy, forces = model.energy_and_forces(inputs["z"], inputs["pos"], inputs["batch"])
        entry: Dict[str, Any] = {
            "config": config,
            "energy": energy.tolist(),
            "forces": forces.tolist(),
            "loss_gradients": loss_gradients(model, inputs["z"], inputs["pos"], inputs["batch"]),
        }
        if config["cutoff"] is not None:
            z = torch.tensor(PERIODIC["z"])
            pos = torch.tensor(PERIODIC["pos"], dtype=torch.float64)
            cell = torch.tensor(PERIODIC["cell"], dtype=torch.float64).unsqueeze(0)
            pbc = torch.tensor(PERIODIC["pbc"]).unsqueeze(0)
            e, f, s = model.energy_forces_stress(z, pos, None, cell, pbc)
            entry["periodic"] = {"energy": e.tolist(), "forces": f.tolist(), "stress": s.tolist()}
        golden["configs"][name] = entry
    return golden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {GOLDEN_FILE.name} (on purpose only)")
    args = parser.parse_args()
    golden = compute()
    if args.write:
        GOLDEN_FILE.write_text(json.dumps(golden, indent=1) + "\n")
        print(f"wrote {GOLDEN_FILE}")
    else:
        print(json.dumps({k: v["energy"] for k, v in golden["configs"].items()}))


if __name__ == "__main__":
    main()
