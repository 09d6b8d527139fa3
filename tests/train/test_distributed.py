"""Data-parallel training on 2 CPU processes (gloo) equals training on one process.

One forked 2-process run (module fixture) trains four trainers -- float64 energy + forces (sparse and
dense batching), float32 energy + forces, float64 forces only -- on 13 molecules with a global batch of 5 (slices of 2 and 3
molecules, and 1 and 2 in the last batch), after evaluating the initial model on 7 validation
molecules (shards of 3 and 4). Each rank saves what it ends with; the tests compare the ranks with
each other and with the same trainers run in this process.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.multiprocessing as mp
from _dist_harness import run_ranks
from _trainer_tiny_data import synthetic_molecules, tiny_model
from torch_geometric.data import Data

from pyg_schnet.io.model_file import safe_load
from pyg_schnet.train import TrainConfig, Trainer, distributed

RAW = synthetic_molecules(20, seed=5)
SPLIT = {"train": torch.arange(13), "val": torch.arange(13, 20), "test": torch.empty(0, dtype=torch.long)}
#: the last bias of the energy head shifts every energy by a constant: no force depends on it
LAST_BIAS = "head.net.2.bias"


def as_dtype(data, dtype):
    return [Data(z=d.z, pos=d.pos.to(dtype), energy=d.energy, force=d.force.to(dtype)) for d in data]


CASES = {
    "f64": dict(dtype=torch.float64, rho=10.0, energy_weight=1.0),
    "f32": dict(dtype=torch.float32, rho=10.0, energy_weight=1.0),
    "force_only": dict(dtype=torch.float64, rho=10.0, energy_weight=0.0),
    "f64_dense": dict(dtype=torch.float64, rho=10.0, energy_weight=1.0, batching="dense"),
}


def make_trainer(case: str, out, max_epochs: int = 2, model_seed: int = 0) -> Trainer:
    spec = CASES[case]
    data = as_dtype(RAW, spec["dtype"])
    model = tiny_model(model_seed).to(spec["dtype"])
    model.set_standardization(-3.0, 1.0)
    cfg = TrainConfig(
        rho=spec["rho"],
        energy_weight=spec["energy_weight"],
        batching=spec.get("batching", "sparse"),
        batch_size=5,
        lr=1e-2,
        ema_decay=0.9,
        max_epochs=max_epochs,
        patience=None,
        seed=11,
        progress=False,
    )
    return Trainer(model, data[:13], data[13:], out, cfg, split=SPLIT)


def snapshot(trainer: Trainer) -> dict:
    return {
        "model": copy.deepcopy(trainer.model.state_dict()),
        "ema": copy.deepcopy(trainer.ema.state_dict()),
        "optimizer": copy.deepcopy(trainer.optimizer.state_dict()),
        "history": list(trainer.history),
        "steps": trainer.step,
    }


def _train_all_cases(rank: int, tmp) -> None:
    result = {}
    for case in CASES:
        trainer = make_trainer(case, tmp / case / f"rank{rank}")  # a folder per rank: who writes?
        if case == "f64":  # sharded validation of the initial model, before any step
            result["initial_val"] = trainer.evaluate(trainer.val_dataset, model=copy.deepcopy(trainer.model)).compute()
        trainer.fit()
        result[case] = snapshot(trainer)
        result[case]["same_on_all_ranks"] = distributed.all_equal(
            list(trainer.model.state_dict().values()) + list(trainer.ema.state_dict().values()), trainer.dist
        )
    torch.save(result, tmp / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    run_ranks(_train_all_cases, tmp, deadline_s=120)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)], tmp


def flat_optimizer_state(state: dict) -> list:
    return [(pid, key, value) for pid, entry in sorted(state["state"].items()) for key, value in sorted(entry.items())]


def test_ranks_hold_identical_parameters_ema_and_optimizer_state(two_ranks):
    (rank0, rank1), _ = two_ranks
    for case in CASES:
        assert rank0[case]["same_on_all_ranks"] and rank1[case]["same_on_all_ranks"], case
        for part in ("model", "ema"):
            for key, value in rank0[case][part].items():
                assert torch.equal(value, rank1[case][part][key]), (case, part, key)
        state0, state1 = flat_optimizer_state(rank0[case]["optimizer"]), flat_optimizer_state(rank1[case]["optimizer"])
        assert len(state0) == len(state1) > 0
        for (pid, key, a), (pid1, key1, b) in zip(state0, state1):
            assert (pid, key) == (pid1, key1) and torch.equal(torch.as_tensor(a), torch.as_tensor(b)), (case, pid, key)
        for row0, row1 in zip(rank0[case]["history"], rank1[case]["history"]):  # all but the clocks
            assert {k: v for k, v in row0.items() if not k.endswith("_s")} == {
                k: v for k, v in row1.items() if not k.endswith("_s")
            }, case


@pytest.mark.parametrize("case, tol", [("f64", 1e-10), ("f32", 1e-5), ("f64_dense", 1e-10)])
def test_two_processes_equal_one_process_with_uneven_shards(two_ranks, tmp_path, case, tol):
    (rank0, _), _ = two_ranks
    single = make_trainer(case, tmp_path)
    assert not single.dist.enabled
    single.fit()
    assert single.step == rank0[case]["steps"] == 6  # 13 molecules, global batch 5: 3 steps per epoch
    moved = 0.0
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0[case]["model"][key], value, rtol=0, atol=tol, msg=key)
        moved = max(moved, float((value - tiny_model(0).to(value.dtype).state_dict()[key]).abs().max()))
    assert moved > 100 * tol  # the parameters did move: the comparison is not between two initial models
    for key, value in single.ema.state_dict().items():
        torch.testing.assert_close(rank0[case]["ema"][key], value, rtol=0, atol=tol, msg=key)
    for row, row_k2 in zip(single.history, rank0[case]["history"]):
        for key in ("train_loss", "val_loss", "val_energy_mae", "val_force_mae"):
            assert row_k2[key] == pytest.approx(row[key], rel=1e-4 if case == "f32" else 1e-9), key


def test_sharded_validation_equals_one_process_on_odd_count(two_ranks, tmp_path):
    (rank0, rank1), _ = two_ranks
    single = make_trainer("f64", tmp_path)
    expected = single.evaluate(single.val_dataset, model=copy.deepcopy(single.model)).compute()
    assert expected["num_molecules"] == 7
    for got in (rank0["initial_val"], rank1["initial_val"]):
        assert got["num_molecules"] == 7
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=0), key


def test_force_only_loss_trains_under_ddp_like_one_process(two_ranks, tmp_path):
    (rank0, _), _ = two_ranks
    single = make_trainer("force_only", tmp_path)
    initial_bias = single.model.state_dict()[LAST_BIAS].clone()
    single.fit()
    # no gradient reaches the last bias from a force-only loss: it stays, on one process and on two
    assert torch.equal(single.model.state_dict()[LAST_BIAS], initial_bias)
    assert torch.equal(rank0["force_only"]["model"][LAST_BIAS], initial_bias)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(rank0["force_only"]["model"][key], value, rtol=0, atol=1e-10, msg=key)
    assert rank0["force_only"]["history"][-1]["train_loss"] < rank0["force_only"]["history"][0]["train_loss"]


def test_rank_zero_alone_writes_the_run_files(two_ranks):
    _, tmp = two_ranks
    assert not list((tmp / "f64" / "rank1").iterdir())
    out = tmp / "f64" / "rank0"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "model.pt"]
    assert len((out / "log.csv").read_text().splitlines()) == 1 + 2
    assert safe_load(out / "checkpoint.pt")["step"] == 6


def _clock_of_rank_one_runs_out(rank: int, out) -> None:
    trainer = make_trainer("f32", out)
    trainer.config.max_minutes = 60.0
    if rank == 1:  # this rank's clock says the time is up; rank 0's does not
        trainer._time_left_s = lambda run_start: -1.0
    fit = trainer.fit()
    torch.save((fit.steps, fit.epochs, fit.stopped), out / f"fit{rank}.pt")


def test_time_cap_is_decided_by_rank_zero_for_all(tmp_path):
    # were each rank to read its own clock, rank 1 would stop while rank 0 waits for it: a hang
    run_ranks(_clock_of_rank_one_runs_out, tmp_path, deadline_s=60)
    for rank in range(2):
        assert torch.load(tmp_path / f"fit{rank}.pt") == (6, 2, "max_epochs")


class Killed(Exception):
    pass


def _train_then_maybe_die(rank: int, out, die_at_step, model_seed: int = 0) -> None:
    trainer = make_trainer("f64", out, max_epochs=3, model_seed=model_seed)
    if die_at_step:
        original = trainer._train_step

        def step_then_die(batch):
            if trainer.step == die_at_step:
                raise Killed
            return original(batch)

        trainer._train_step = step_then_die
        try:
            trainer.fit()
        except Killed:
            return
        raise AssertionError("the run was not interrupted")
    trainer.fit(resume=True)


def test_two_process_run_killed_after_an_epoch_resumes_to_the_uninterrupted_end(tmp_path):
    run_ranks(_train_then_maybe_die, tmp_path / "a", None)  # uninterrupted (resume finds no checkpoint)
    run_ranks(_train_then_maybe_die, tmp_path / "b", 4)  # killed one step into epoch 2
    assert safe_load(tmp_path / "b" / "checkpoint.pt")["epoch"] == 1
    run_ranks(_train_then_maybe_die, tmp_path / "b", None, 123)  # fresh processes, other initial weights
    ref, resumed = safe_load(tmp_path / "a" / "checkpoint.pt"), safe_load(tmp_path / "b" / "checkpoint.pt")
    assert (resumed["epoch"], resumed["step"]) == (ref["epoch"], ref["step"]) == (3, 9)
    for part in ("model", "ema", "best_model"):
        for key, value in ref[part].items():
            assert torch.equal(resumed[part][key], value), (part, key)
    for row_ref, row in zip(ref["history"], resumed["history"]):
        for key in ("step", "lr", "train_loss", "val_loss", "val_energy_mae", "val_force_mae"):
            assert row[key] == row_ref[key], key


def _fail_on_rank_one(rank: int, out) -> None:
    if rank == 1:
        raise ValueError("rank 1: bad frame 3 in the training file")
    make_trainer("f32", out).fit()  # rank 0 waits in a collective for rank 1


def test_a_failing_rank_ends_the_job_with_its_message(tmp_path):
    # the job ends (no TimeoutError): the launcher stops rank 0, or rank 0's collective fails at once
    # because its peer is gone; which of the two the launcher reports first is a race
    with pytest.raises(mp.ProcessRaisedException):
        run_ranks(_fail_on_rank_one, tmp_path, deadline_s=30, errors=tmp_path)
    assert "bad frame 3" in (tmp_path / "rank1.error").read_text()


def _late_rank(rank: int, record) -> None:
    import time

    if rank == 1:
        time.sleep(3.0)  # misses the collective rank 0 starts
        return
    try:
        torch.distributed.all_reduce(torch.ones(1))
    except Exception as exc:  # noqa: BLE001 -- the message is what the test checks
        record.write_text(f"{type(exc).__name__}: {exc}")


def test_collective_timeout_from_environment_ends_a_wait(tmp_path, monkeypatch):
    monkeypatch.setenv(distributed.ENV_TIMEOUT, "1")
    record = tmp_path / "error.txt"
    run_ranks(_late_rank, record, deadline_s=30, collective_timeout_s=None)
    assert "imed out" in record.read_text() or "timeout" in record.read_text().lower()


def test_helpers_without_a_process_group():
    info = distributed.current()
    assert (info.world_size, info.rank, info.backend, info.enabled, info.is_main) == (1, 0, None, False, True)
    assert distributed.shard(RAW, info) is RAW
    assert [distributed.shard_bounds(7, r, 2) for r in range(2)] == [(0, 3), (3, 7)]
    assert [distributed.shard_bounds(1, r, 2) for r in range(2)] == [(0, 0), (0, 1)]
    assert distributed.choose_backend("cpu") == "gloo" and distributed.choose_backend("cuda") == "nccl"
    with pytest.raises(ValueError, match="nccl needs a CUDA device"):
        distributed.choose_backend("cpu", "nccl")
    with pytest.raises(ValueError, match="backend must be one of"):
        distributed.choose_backend("cpu", "mpi")
    assert distributed.timeout_seconds(5) == 5.0


def _nan_on_rank_one(rank: int, out) -> None:
    from pyg_schnet.train import NonFiniteError

    trainer = make_trainer("f32", out)
    bad = copy.copy(trainer.train_dataset[9])  # in rank 1's slice of global batch 2
    bad.energy = torch.full_like(bad.energy, float("nan"))
    trainer.train_dataset[9] = bad
    try:
        trainer.fit()
    except NonFiniteError as exc:
        (out / f"rank{rank}.error").write_text(str(exc))


def test_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    run_ranks(_nan_on_rank_one, tmp_path, deadline_s=60)
    # both ranks read the loss of the global batch, so both stop at the same step with the same message
    messages = [(tmp_path / f"rank{rank}.error").read_text() for rank in range(2)]
    assert messages[0] == messages[1]
    assert "step 2: the training loss is nan (mini-batch 2 of the epoch)" in messages[0]
    assert "example 9, field 'energy'" in messages[0]


def _resume_two_ranks(rank: int, out) -> None:
    make_trainer("f64", out, max_epochs=2, model_seed=123).fit(resume=True)


def test_one_process_checkpoint_resumes_on_two_processes(tmp_path):
    reference = make_trainer("f64", tmp_path / "a", max_epochs=2)
    reference.fit()
    make_trainer("f64", tmp_path / "b", max_epochs=1).fit()  # one process, one epoch
    run_ranks(_resume_two_ranks, tmp_path / "b")  # two processes, the second epoch
    resumed = safe_load(tmp_path / "b" / "checkpoint.pt")
    assert (resumed["epoch"], resumed["step"]) == (2, 6)
    for key, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=0, atol=1e-10, msg=key)
