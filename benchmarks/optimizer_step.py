"""One E+F training step of the paper's SchNet (ethanol, batch 32, one CPU thread) with the trainer's
optimizer and EMA update (fused Adam, :class:`~pyg_schnet.train.trainer.EMAUpdate`) against the
per-parameter Adam loop and ``AveragedModel.update_parameters`` of 0.3.0, interleaved step by step.

    python benchmarks/optimizer_step.py --steps 80

Data: the first 32 frames of the embedded demo data (xTB ethanol). docs/benchmarks.md quotes it.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pyg_schnet import SchNet
from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.train.trainer import EMAUpdate, adam, exponential_moving_average


def setup(kind: str, mean: float) -> Tuple[SchNet, torch.optim.Optimizer, Callable[[], None]]:
    torch.manual_seed(0)
    model = SchNet.from_paper()
    model.set_standardization(mean, 1.0)
    model.train()
    if kind == "loop":
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99), use_buffers=True)
        return model, optimizer, lambda: ema.update_parameters(model)
    fused_ema = exponential_moving_average(model, 0.99)
    return model, adam(list(model.parameters()), 1e-3), EMAUpdate(fused_ema, model, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = np.load(DEMO_DATA)
    R, z = torch.tensor(data["R"][:32], dtype=torch.float32), torch.tensor(data["z"])
    E = torch.tensor(data["E"][:32, 0], dtype=torch.float32)
    F = torch.tensor(data["F"][:32], dtype=torch.float32).reshape(-1, 3)
    zb, pos = z.repeat(32), R.reshape(-1, 3)
    batch = torch.arange(32).repeat_interleave(z.numel())
    runs = {kind: setup(kind, float(E.mean()) / z.numel()) for kind in ("loop", "fused")}

    def step(model: SchNet, optimizer: torch.optim.Optimizer, update: Callable[[], None]) -> None:
        energy, forces = model.energy_and_forces(zb, pos, batch)
        loss = (energy - E).square().mean() + 100.0 / z.numel() * (forces - F).square().sum() / 32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update()

    times: Dict[str, List[float]] = {kind: [] for kind in runs}
    for i in range(10 + args.steps):
        for kind, run in runs.items():
            start = time.perf_counter()
            step(*run)
            if i >= 10:
                times[kind].append(time.perf_counter() - start)
    for kind, values in times.items():
        print(f"{kind}: min {1e3 * min(values):.2f} ms, median {1e3 * float(np.median(values)):.2f} ms per step")
    print(f"median loop / fused: {np.median(times['loop']) / np.median(times['fused']):.3f}")


if __name__ == "__main__":
    main()
