"""The demo is bounded by optimizer steps, not by time: every machine trains the same model. Two short
runs with the same flags give bit-identical weights and test errors, and the demo's default is a fixed
number of steps with no time cap."""

from __future__ import annotations

import pytest
import torch
from _trainer_tiny_data import TINY_FLAGS

from pyg_schnet.experiments.demo import DEMO_DATA
from pyg_schnet.experiments.demo.__main__ import DEMO_STEPS, main, parse_args, steps_per_epoch
from pyg_schnet.train import load_model


def test_the_default_demo_is_a_fixed_number_of_steps_without_a_time_cap():
    args = parse_args([])
    assert args.max_minutes is None and args.threads == 1
    assert args.max_epochs * steps_per_epoch(700, 32) == DEMO_STEPS
    # --steps rounds up to whole epochs; --max-epochs wins over it
    assert parse_args(["--steps", "23"]).max_epochs == 2
    assert parse_args(["--steps", "23", "--max-epochs", "5"]).max_epochs == 5
    with pytest.raises(ValueError, match="--steps must be a positive integer"):
        parse_args(["--steps", "0"])


def _short_demo(out):
    return main(
        [
            "--out",
            str(out),
            "--steps",
            "30",
            "--n-train",
            "64",
            "--n-val",
            "16",
            "--n-test",
            "16",
            *TINY_FLAGS[:-3],
            "--quiet",
        ]
    )


def test_two_short_demo_runs_give_bit_identical_weights_and_errors(tmp_path):
    if not DEMO_DATA.exists():
        pytest.skip(f"demo data {DEMO_DATA} not generated yet")
    before = torch.are_deterministic_algorithms_enabled()
    first, second = _short_demo(tmp_path / "a"), _short_demo(tmp_path / "b")
    assert torch.are_deterministic_algorithms_enabled() == before  # restored after each run
    for results in (first, second):
        assert results["training"]["steps"] == 30 and results["training"]["stopped"] == "max_epochs"
        assert results["demo"]["steps"] == 30 and results["demo"]["deterministic_algorithms"] is True
    assert first["test"] == second["test"] and first["training"]["best_val"] == second["training"]["best_val"]
    a = load_model(tmp_path / "a" / "model.pt").state_dict()
    b = load_model(tmp_path / "b" / "model.pt").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
