"""Periodic neighbour search and all-pairs memory: the measurements behind docs/periodic.md.

``neighbours`` times the search for every pair ``(i, j, S)`` within a cutoff in random periodic
structures (density 0.1 atoms per Angstrom^3, a slightly triclinic cell, cutoff 5 Angstrom by
default), for each backend that can be imported:

- ``ase``: :func:`ase.neighborlist.primitive_neighbor_list` (NumPy, binned; what pyg-schnet uses);
- ``vesin``: ``vesin.NeighborList(...).compute`` (C++ cell list);
- ``matscipy``: ``matscipy.neighbours.neighbour_list`` (C cell list; not a dependency, install it
  to measure it);
- ``torch_images``: plain PyTorch, all ``N x N x images`` candidate distances in chunks;
- ``torch_cluster``: :func:`torch_cluster.radius` between the atoms and their images (k-d tree).

Each backend's pairs are checked against ASE's (same number of directed pairs) before it is timed;
a backend that disagrees is reported, not timed. Also timed: a batch of 64 small cells (8 atoms,
cells shorter than the cutoff), the case of a training batch, and, for context, one
``energy_forces_stress`` call of a small model on the largest structure.

``memory`` prints the peak resident memory of the paper's all-pairs model (``cutoff=None``) on
``--atoms`` random atoms beside :func:`pyg_schnet.graph.all_pairs_bytes`; run it once per size and mode
(a fresh process each, so the peak is that of one call).

    python benchmarks/periodic.py neighbours --sizes 100 500 1000 2000 5000
    python benchmarks/periodic.py memory --atoms 600 --mode forces
"""

from __future__ import annotations

import argparse
import importlib
import resource
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

Search = Callable[[np.ndarray, np.ndarray, np.ndarray, float], Tuple[np.ndarray, ...]]


def random_structure(num_atoms: int, density: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Positions (Angstrom) and a triclinic cell (rows) holding ``num_atoms`` at ``density``."""
    rng = np.random.default_rng(seed)
    length = (num_atoms / density) ** (1 / 3)
    cell = length * (np.eye(3) + rng.uniform(-0.1, 0.1, (3, 3)) * (1 - np.eye(3)))
    return rng.uniform(0, 1, (num_atoms, 3)) @ cell, cell


def _ase(pos, cell, pbc, cutoff):
    from ase.neighborlist import primitive_neighbor_list

    return primitive_neighbor_list("ijS", pbc, cell, pos, cutoff, self_interaction=False)


def _vesin(pos, cell, pbc, cutoff):
    from vesin import NeighborList

    return NeighborList(cutoff=cutoff, full_list=True).compute(pos, cell, [bool(p) for p in pbc], "ijS")


def _matscipy(pos, cell, pbc, cutoff):
    from matscipy.neighbours import neighbour_list

    return neighbour_list("ijS", positions=pos, cell=cell, pbc=pbc, cutoff=cutoff)


def _image_offsets(cell: torch.Tensor, pbc: np.ndarray, cutoff: float) -> torch.Tensor:
    heights = 1.0 / torch.linalg.vector_norm(torch.linalg.inv(cell).T, dim=1)
    reach = [int(np.ceil(cutoff / float(h))) if p else 0 for h, p in zip(heights, pbc)]
    grids = torch.meshgrid(*(torch.arange(-r, r + 1, dtype=cell.dtype) for r in reach), indexing="ij")
    return torch.stack([g.flatten() for g in grids], dim=1)


def _wrapped(pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray):
    p, c = torch.as_tensor(pos), torch.as_tensor(cell)
    frac = p @ torch.linalg.inv(c)
    whole = torch.where(torch.as_tensor(pbc), torch.floor(frac), torch.zeros_like(frac))
    return (frac - whole) @ c, c, whole


def _torch_images(pos, cell, pbc, cutoff):
    p, c, whole = _wrapped(pos, cell, pbc)
    offsets = _image_offsets(c, pbc, cutoff)
    out_i, out_j, out_s = [], [], []
    for shift in offsets:  # one image at a time keeps memory at N x N
        d = torch.cdist(p, p + shift @ c)
        i, j = torch.nonzero(d < cutoff, as_tuple=True)
        if not bool(shift.any()):
            keep = i != j
            i, j = i[keep], j[keep]
        out_i.append(i)
        out_j.append(j)
        out_s.append((shift + whole[i] - whole[j]).expand(i.numel(), 3) if i.numel() else shift.new_empty((0, 3)))
    return torch.cat(out_i).numpy(), torch.cat(out_j).numpy(), torch.cat(out_s).long().numpy()


def _torch_cluster(pos, cell, pbc, cutoff):
    import torch_cluster

    p, c, whole = _wrapped(pos, cell, pbc)
    offsets = _image_offsets(c, pbc, cutoff)
    images = (p[None] + (offsets @ c)[:, None]).reshape(-1, 3)
    n = p.size(0)
    edge = torch_cluster.radius(images, p, cutoff, max_num_neighbors=images.size(0))
    i, image = edge[0], edge[1]
    j, k = image % n, image // n
    keep = (i != j) | offsets[k].any(dim=1)
    i, j, k = i[keep], j[keep], k[keep]
    return i.numpy(), j.numpy(), (offsets[k] + whole[i] - whole[j]).long().numpy()


BACKENDS: Dict[str, Tuple[Optional[str], Search]] = {
    "ase": ("ase", _ase),
    "vesin": ("vesin", _vesin),
    "matscipy": ("matscipy.neighbours", _matscipy),
    "torch_images": (None, _torch_images),
    "torch_cluster": ("torch_cluster", _torch_cluster),
}


def available(names: List[str]) -> Dict[str, Search]:
    found = {}
    for name, (module, fn) in BACKENDS.items():
        if name not in names:
            continue
        try:
            if module:
                importlib.import_module(module)
        except ImportError as exc:
            print(f"{name}: not available ({exc})")
            continue
        found[name] = fn
    return found


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def neighbours(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    backends = available(args.backends)
    pbc = np.array([True, True, True])
    print(f"cutoff {args.cutoff} A, density {args.density} / A^3, best of {args.repeats}, milliseconds")
    print("| atoms | pairs | " + " | ".join(backends) + " |")
    print("|---|---|" + "---|" * len(backends))
    skip: Dict[str, bool] = {}
    for size in args.sizes:
        pos, cell = random_structure(size, args.density, seed=size)
        reference = _ase(pos, cell, pbc, args.cutoff)
        row: List[str] = []
        for name, fn in backends.items():
            if skip.get(name):
                row.append("-")
                continue
            result = fn(pos, cell, pbc, args.cutoff)
            if len(result[0]) != len(reference[0]):
                row.append(f"wrong ({len(result[0])} pairs)")
                continue
            seconds = best_of(lambda f=fn, p=pos, c=cell: f(p, c, pbc, args.cutoff), args.repeats)
            skip[name] = seconds > args.max_seconds
            row.append(f"{1e3 * seconds:.1f}")
        print(f"| {size} | {len(reference[0])} | " + " | ".join(row) + " |")

    # a training-like batch: 64 small cells (shorter than the cutoff), one search per structure
    rng = np.random.default_rng(0)
    cells = [4.3 * np.eye(3) + rng.uniform(-0.3, 0.3, (3, 3)) for _ in range(64)]
    structures = [(rng.uniform(0, 1, (8, 3)) @ c, c) for c in cells]
    row = []
    for fn in backends.values():
        seconds = best_of(lambda f=fn: [f(p, c, pbc, args.cutoff) for p, c in structures], args.repeats)
        row.append(f"{1e3 * seconds:.1f}")
    print("| 64 x 8 atoms (cells 4.3 A) | - | " + " | ".join(row) + " |")

    # context: the model on the largest structure (energy, forces, stress), neighbour search included
    from pyg_schnet import SchNet

    size = max(args.sizes)
    pos, cell = random_structure(size, args.density, seed=size)
    model = SchNet(num_gaussians=50, rbf_stop=args.cutoff, cutoff=args.cutoff).eval()
    z = torch.full((size,), 6)
    call = lambda: model.energy_forces_stress(  # noqa: E731
        z,
        torch.as_tensor(pos, dtype=torch.float32),
        None,
        torch.as_tensor(cell, dtype=torch.float32)[None],
        torch.ones(1, 3, dtype=torch.bool),
    )
    print(
        f"SchNet(F=64, 3 interactions, 50 Gaussians) energy_forces_stress, {size} atoms: "
        f"{1e3 * best_of(call, 1):.0f} ms"
    )


def memory(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    from pyg_schnet import SchNet
    from pyg_schnet.graph import all_pairs_bytes

    model = SchNet.from_paper().eval()
    z = torch.randint(1, 9, (args.atoms,), generator=torch.Generator().manual_seed(0))
    pos = torch.rand(args.atoms, 3, generator=torch.Generator().manual_seed(1)) * 2.2 * args.atoms ** (1 / 3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.mode == "no_grad":
        with torch.no_grad():
            model(z, pos)
    else:
        model.energy_and_forces(z, pos)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    estimate = all_pairs_bytes(
        torch.zeros(args.atoms, dtype=torch.long), 301, 64, 3, torch.float32, args.mode != "no_grad"
    )
    print(f"{args.atoms} atoms, {args.mode}: measured {peak_mb:.0f} MB, estimate {estimate / 2**20:.0f} MB")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("neighbours", help="time the periodic neighbour search backends")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 500, 1000, 2000, 5000])
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    p.add_argument("--max-seconds", type=float, default=5.0, help="stop timing a backend slower than this")
    p.set_defaults(run=neighbours)
    m = sub.add_parser("memory", help="peak memory of the all-pairs model against the estimate")
    m.add_argument("--atoms", type=int, default=300)
    m.add_argument("--mode", choices=["no_grad", "forces"], default="forces")
    m.set_defaults(run=memory)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
