r"""Where a step's time goes: matrix-product work against everything else, per implementation.

A speed-up over a peer can come from doing less arithmetic or from doing it faster. For one step of
each implementation this module measures

- ``gflop``: the floating-point operations of its matrix products (``mm``, ``addmm``, ``bmm``, ...:
  every operator that :mod:`torch.utils.flop_counter` knows), forward, backward and double backward,
  counted at dispatch (:class:`MatmulFlops`);
- ``matmul_share``: the share of the step's operator time (``torch.profiler``, self CPU time) spent
  in those products; ``matmul_ms`` is that share of the median step time;
- ``gflops_rate``: ``gflop / matmul_ms``, the rate the products ran at.

The products are the part no rewrite of the surrounding operations removes. If everything else took
no time, ours would take ``matmul_ms``, so ``peer step time / our matmul_ms`` bounds the speed-up over
that peer obtainable without fewer or faster products (:func:`bounds`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from harness import environment
from harness.adapters import make_runners
from harness.molecules import build_cases
from harness.peers import CASES, LABELS, training_case
from harness.timing import measure, profiler_log_filtered

#: Profiler names of the matrix-product operators.
MATMUL_OPS = frozenset(
    f"aten::{name}" for name in ("mm", "addmm", "bmm", "baddbmm", "matmul", "mv", "addmv", "dot", "linear")
)


class MatmulFlops(TorchDispatchMode):
    """Counts the floating-point operations of the matrix products dispatched inside the ``with``
    block (``.flops``), with :data:`torch.utils.flop_counter.flop_registry`'s formulas (``2 m n k``
    for an ``m x k`` by ``k x n`` product). Unlike :class:`torch.utils.flop_counter.FlopCounterMode`
    it installs no module hooks, which ``torch.autograd.grad`` (forces) does not allow."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(
        self, func: Any, types: Any, args: Tuple[Any, ...] = (), kwargs: Optional[Dict] = None
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            shapes = [a.shape if isinstance(a, torch.Tensor) else a for a in args]
            self.flops += int(formula(*shapes, **kwargs, out_val=out))
        return out


def matmul_share(step: Callable[[], Any]) -> float:
    """Share of one call's operator self time (CPU) spent in :data:`MATMUL_OPS`."""
    with profiler_log_filtered(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    return matmul / total if total > 0 else 0.0


def measure_work(
    steps: Dict[str, Callable[[], Any]], device: torch.device, warmup: int = 3, repeats: int = 11
) -> Dict[str, Dict[str, float]]:
    """``gflop``, ``matmul_share``, ``median_ms``, ``matmul_ms``, ``gflops_rate`` per step, the steps
    timed in interleaved rounds by :func:`harness.timing.measure`."""
    out: Dict[str, Dict[str, float]] = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        counter = MatmulFlops()
        with counter:
            step()
        out[name] = dict(gflop=counter.flops / 1e9, matmul_share=matmul_share(step))
    timed = measure(steps, device, warmup=0, repeats=repeats, memory=False)
    for name, row in out.items():
        row["median_ms"] = 1e3 * timed[name]["median_s"]
        row["matmul_ms"] = row["matmul_share"] * row["median_ms"]
        row["gflops_rate"] = row["gflop"] / (row["matmul_ms"] / 1e3) if row["matmul_ms"] > 0 else float("nan")
    return out


def bounds(rows: Dict[str, Dict[str, float]], ours: str, peers: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """Per peer: the measured speed-up ``peer median / our median`` and the bound ``peer median /
    our matmul_ms`` (ours with all non-product work removed), and the ratio of matrix-product work
    ``peer gflop / our gflop``."""
    mine = rows[ours]
    return {
        peer: dict(
            speedup=rows[peer]["median_ms"] / mine["median_ms"],
            bound=rows[peer]["median_ms"] / mine["matmul_ms"] if mine["matmul_ms"] > 0 else float("inf"),
            flop_ratio=rows[peer]["gflop"] / mine["gflop"] if mine["gflop"] > 0 else float("inf"),
        )
        for peer in peers
        if peer in rows
    }


def run_work(
    configs: Dict[str, Any],
    case_names: Sequence[str],
    impls: Sequence[str],
    device: torch.device,
    batch_size: Optional[int] = None,
    seed: int = 0,
    warmup: int = 3,
    repeats: int = 11,
) -> List[Dict[str, Any]]:
    """One row per (config, training case, implementation) of :data:`harness.peers.CASES`
    (the MD call is left out: its time is per-operation overhead, not products)."""
    molecule_cases = build_cases({})
    rows: List[Dict[str, Any]] = []
    for config_name, config in configs.items():
        runners, _ = make_runners(impls, config, device)
        for case in (c for c in CASES if c.name in case_names and c.mode != "md_call"):
            _, steps = training_case(case, runners, molecule_cases, batch_size, seed, device)
            for name, row in measure_work(steps, device, warmup, repeats).items():
                rows.append(dict(config=config_name, case=case.name, title=case.title, impl=name, **row))
                print(
                    f"  {config_name:6s} {case.name:16s} {name:12s} {row['gflop']:7.3f} GFLOP "
                    f"{row['median_ms']:8.2f} ms, products {100 * row['matmul_share']:4.1f}%",
                    flush=True,
                )
    return rows


def markdown(report: Dict[str, Any]) -> str:
    """The table of :func:`run_work`'s rows with the bounds of :func:`bounds`, and its header."""
    meta = report["meta"]
    lines = [
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['device']}, {meta['threads']} torch thread(s), float32; date {meta['date']}; "
        f"torch {meta['versions']['torch']}; " + environment.allocator_note(meta) + ".  ",
        f"One profiled and one counted step per implementation after {meta['warmup']} warm-up steps; median of "
        f"{meta['repeats']} interleaved timed steps. GFLOP: matrix products only (forward, backward, double "
        "backward). Products: their share of the profiled operator time, in % and as ms of the median step. "
        "Bound: peer step time / our product time, the speed-up left if everything but the products took no time.",
        "",
        "| config | case | impl | GFLOP / step | ms / step | products % | products ms | GFLOP/s in products "
        "| speed-up | bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = report["results"]
    keys = list(dict.fromkeys((r["config"], r["case"]) for r in rows))
    for config, case in keys:
        group = {r["impl"]: r for r in rows if r["config"] == config and r["case"] == case}
        peer_names = [n for n in group if n != "ours_sparse"]
        limits = bounds(group, "ours_sparse", peer_names) if "ours_sparse" in group else {}
        for name, r in group.items():
            b = limits.get(name)
            lines.append(
                f"| {config} | {r['title']} | {LABELS.get(name, name)} | {r['gflop']:.3f} | {r['median_ms']:.2f} | "
                f"{100 * r['matmul_share']:.0f} | {r['matmul_ms']:.2f} | {r['gflops_rate']:.0f} | "
                + (f"{b['speedup']:.2f} | {b['bound']:.2f} |" if b else "- | - |")
            )
    return "\n".join(lines) + "\n"
