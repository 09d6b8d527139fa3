"""Training throughput of one process against several (torchrun), with the paper's SchNet.

Two workloads, both with the paper's model (``SchNet.from_paper()``) and global batch 32:

* ``ethanol``: energies + forces (rho = 100) on the real MD17 ethanol excerpt
  (``--md17-npz``, e.g. ../shared/data/md17/md17_ethanol.npz: 9 atoms per molecule);
* ``qm9size``: energies only (rho = 0) on molecules of QM9's size: the C7O2H10 isomers of the ISO17
  excerpt (``--iso17-db``, e.g. ../shared/data/iso17/iso17_eq_sample.db: 19 atoms, QM9's largest
  size class; QM9 averages 18 atoms), its 40 rows repeated to ``--n-train`` examples. Repeating
  rows changes nothing for the speed of a step.

Each run trains ``--epochs`` epochs with :class:`pyg_schnet.train.Trainer` and reports optimizer
steps per second over the epochs after the first (warm-up), validation of 32 molecules included.
Run it as ``python benchmarks/distributed.py --task ethanol`` (one process) and as
``torchrun --standalone --nproc-per-node 2 benchmarks/distributed.py --task ethanol`` (two); rank 0
prints one JSON line (and writes it to ``--out`` when given). Also printed: the all-reduce volume per
step, parameters x 4 bytes (float32 gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch_geometric.data import Data


def ethanol_data(npz: Path, count: int) -> List[Data]:
    raw = np.load(npz)
    z = torch.as_tensor(raw["z"], dtype=torch.long)
    return [
        Data(
            z=z,
            pos=torch.as_tensor(raw["R"][i], dtype=torch.float32),
            energy=torch.as_tensor(raw["E"][i], dtype=torch.float64).reshape(1),
            force=torch.as_tensor(raw["F"][i], dtype=torch.float32),
        )
        for i in range(count)
    ]


def qm9size_data(db: Path, count: int) -> List[Data]:
    from ase.db import connect

    rows = [
        (
            torch.tensor(r.numbers, dtype=torch.long),
            torch.tensor(r.positions, dtype=torch.float32),
            float(r.key_value_pairs["total_energy"]),
        )
        for r in connect(str(db)).select()
    ]
    return [
        Data(
            z=rows[i % len(rows)][0],
            pos=rows[i % len(rows)][1],
            energy=torch.tensor([rows[i % len(rows)][2]], dtype=torch.float64),
        )
        for i in range(count)
    ]


def main(argv: Optional[List[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=("ethanol", "qm9size"), required=True)
    parser.add_argument("--md17-npz", type=Path, default=Path("../shared/data/md17/md17_ethanol.npz"))
    parser.add_argument("--iso17-db", type=Path, default=Path("../shared/data/iso17/iso17_eq_sample.db"))
    parser.add_argument("--n-train", type=int, default=512, help="training molecules (global)")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs; the first is warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON line here (rank 0)")
    args = parser.parse_args(argv)

    from pyg_schnet import SchNet
    from pyg_schnet.train import TrainConfig, Trainer, distributed, standardize_model
    from pyg_schnet.train.state import seed_everything

    torch.set_num_threads(args.threads)
    info = distributed.init_from_env("cpu")
    rho = 100.0 if args.task == "ethanol" else 0.0
    n_val = 32
    if args.task == "ethanol":
        data = ethanol_data(args.md17_npz, args.n_train + n_val)
    else:
        data = qm9size_data(args.iso17_db, args.n_train + n_val)
    train, val = data[: args.n_train], data[args.n_train :]
    seed_everything(0)
    model = SchNet.from_paper()
    standardize_model(model, train)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = distributed.broadcast_object(tmp, info)  # rank 0's folder (one machine)
        config = TrainConfig(
            rho=rho, batch_size=args.batch_size, max_epochs=args.epochs, patience=None, seed=0, progress=False
        )
        trainer = Trainer(model, train, val, out_dir, config)
        start = time.monotonic()
        fit = trainer.fit()
        wall = time.monotonic() - start
        distributed.barrier(info)
    steps_per_epoch = -(-args.n_train // args.batch_size)
    timed = trainer.history[1:]
    steps_per_s = steps_per_epoch * len(timed) / sum(row["epoch_s"] for row in timed)
    params = sum(p.numel() for p in model.parameters())
    result = {
        "task": args.task,
        "rho": rho,
        "processes": info.world_size,
        "backend": info.backend,
        "threads_per_process": args.threads,
        "global_batch": args.batch_size,
        "n_train": args.n_train,
        "epochs": fit.epochs,
        "steps": fit.steps,
        "steps_per_s": steps_per_s,
        "molecules_per_s": steps_per_s * args.batch_size,
        "wall_s": wall,
        "parameters": params,
        "allreduce_bytes_per_step": params * 4,
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "torch_version": torch.__version__,
    }
    if info.is_main:
        line = json.dumps(result)
        print(line)
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as handle:
                handle.write(line + "\n")
    return result


if __name__ == "__main__":
    main()
