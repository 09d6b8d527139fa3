"""Fast path against reference path (``pyg_schnet.nn.fused``), same process, interleaved steps.

Times one step of each case with the fast path on and with ``set_fast_path(False)`` (the plain
modules), alternating rounds, and prints the CPU time of the thread per step (robust on a busy
machine with one thread) as a markdown table: minimum and median in ms, and the ratio of minima.

Cases (float32, one thread): the paper's configuration (64/64/3, 301 Gaussians on 0-30 A, gamma 10,
all pairs) on a batch of 32 real MD17 ethanol frames with energy + force training (forward, forces
with ``create_graph``, loss backward), on 32 QM9-sized synthetic molecules (3-29 atoms, atoms on a
jittered 1.45 A grid) with energy training, and one ethanol energy + forces call in eval mode; the
common configuration (128/128/6, 50 Gaussians on 0-10 A, cutoff 10 A) on the same ethanol cases.

    python benchmarks/fast_paths.py [--rounds 6] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

from pyg_schnet import SchNet
from pyg_schnet.nn import set_fast_path

COMMON = dict(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50, rbf_stop=10.0, cutoff=10.0)


def qm9_sized(batch_size: int, seed: int = 0):
    """``batch_size`` molecules of 3-29 atoms (H, C, N, O, F) on a jittered 1.45 A grid."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*(torch.arange(4),) * 3, indexing="ij"), -1).reshape(-1, 3).double() * 1.45
    z, pos, batch = [], [], []
    for m, n in enumerate(torch.randint(3, 30, (batch_size,), generator=gen).tolist()):
        pos.append(
            grid[torch.randperm(64, generator=gen)[:n]] + 0.2 * torch.rand(n, 3, generator=gen, dtype=torch.float64)
        )
        z.append(torch.tensor([1, 6, 7, 8, 9])[torch.randint(0, 5, (n,), generator=gen)])
        batch.append(torch.full((n,), m))
    return torch.cat(z), torch.cat(pos).float(), torch.cat(batch)


def cases(data: Path) -> Dict[str, Callable[[], object]]:
    npz = np.load(data / "md17" / "md17_ethanol.npz")
    pos32 = torch.tensor(npz["R"][:32]).reshape(-1, 3).float()
    z32, batch32 = torch.tensor(npz["z"]).repeat(32), torch.arange(32).repeat_interleave(9)
    z1, pos1 = torch.tensor(npz["z"]), torch.tensor(npz["R"][0]).float()
    gen = torch.Generator().manual_seed(0)
    e_ref, f_ref = torch.randn(32, generator=gen), torch.randn(pos32.shape, generator=gen)
    qz, qpos, qbatch = qm9_sized(32)

    def ef_step(model: SchNet) -> None:
        energy, forces = model.energy_and_forces(z32, pos32, batch32)
        loss = ((energy - e_ref) ** 2).mean() + ((forces - f_ref) ** 2).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()

    def e_step(model: SchNet) -> None:
        loss = model(qz, qpos, qbatch).pow(2).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()

    torch.manual_seed(0)
    paper, common = SchNet.from_paper().train(), SchNet(**COMMON).train()
    paper_eval, common_eval = SchNet.from_paper().eval(), SchNet(**COMMON).eval()
    return {
        "paper, ethanol E+F training, batch 32": lambda: ef_step(paper),
        "paper, QM9-sized energy training, batch 32": lambda: e_step(paper),
        "paper, one ethanol E+F, eval": lambda: paper_eval.energy_and_forces(z1, pos1),
        "common, ethanol E+F training, batch 32": lambda: ef_step(common),
        "common, one ethanol E+F, eval": lambda: common_eval.energy_and_forces(z1, pos1),
    }


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds (each: a few steps per path)")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = parser.parse_args(argv)
    if not (args.data / "md17" / "md17_ethanol.npz").exists():
        raise SystemExit(f"{args.data / 'md17' / 'md17_ethanol.npz'} not found: pass --data (the shared data folder)")
    torch.set_num_threads(1)
    times: Dict[str, Dict[bool, List[float]]] = {}
    steps = cases(args.data)
    for name, step in steps.items():
        times[name] = {True: [], False: []}
        for fast in (True, False):  # warm-up
            set_fast_path(fast)
            step()
    try:
        for _ in range(args.rounds):
            for name, step in steps.items():
                reps = 20 if "one ethanol" in name else 2
                for fast in (True, False):
                    set_fast_path(fast)
                    for _ in range(reps):
                        start = time.thread_time()
                        step()
                        times[name][fast].append(time.thread_time() - start)
    finally:
        set_fast_path(True)
    print("| case | reference ms (min / median) | fast ms (min / median) | speed-up (min) |")
    print("|---|---|---|---|")
    for name, t in times.items():
        ref, fast = t[False], t[True]
        print(
            f"| {name} | {1e3 * min(ref):.2f} / {1e3 * statistics.median(ref):.2f} | "
            f"{1e3 * min(fast):.2f} / {1e3 * statistics.median(fast):.2f} | {min(ref) / min(fast):.2f} |"
        )


if __name__ == "__main__":
    main()
