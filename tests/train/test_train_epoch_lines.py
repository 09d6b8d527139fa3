"""The per-epoch lines: errors with their units, the time so far and an estimate of the time left;
--no-progress removes only the bar, --quiet the lines too."""

from __future__ import annotations

import re

from _trainer_tiny_data import synthetic_molecules, tiny_model

from pyg_schnet.experiments.protocols.md17 import build_parser
from pyg_schnet.experiments.runner import train_config
from pyg_schnet.train import TrainConfig, Trainer


def test_epoch_lines_carry_units_and_the_time_left(tmp_path, capsys):
    data = synthetic_molecules(12, seed=2)
    config = TrainConfig(batch_size=4, max_epochs=3, progress=False, epoch_lines=True)
    Trainer(tiny_model(), data[:8], data[8:], tmp_path, config).fit()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 3
    pattern = r"val E_mae [\d.]+ kcal/mol, F_mae [\d.]+ kcal/mol/A, loss .* \| [\d.]+ min, about ([\d.]+) min left$"
    lefts = [float(re.search(pattern, line).group(1)) for line in lines]
    assert lefts[-1] == 0.0 and lefts[0] >= lefts[-1]


def test_no_caps_no_estimate_and_progress_false_is_silent(tmp_path, capsys):
    data = synthetic_molecules(12, seed=2)
    Trainer(
        tiny_model(), data[:8], data[8:], tmp_path / "a", TrainConfig(batch_size=4, max_epochs=1, progress=False)
    ).fit()
    assert "epoch" not in capsys.readouterr().out
    trainer = Trainer(tiny_model(), data[:8], data[8:], tmp_path / "b", TrainConfig(batch_size=4, progress=False))
    assert trainer._estimated_minutes_left() is None


def test_no_progress_keeps_the_epoch_lines_and_quiet_removes_them():
    parser = build_parser()
    base = ["--raw-file", "x.npz"]
    assert train_config(parser.parse_args(base), 100.0).prints_epochs
    no_bar = train_config(parser.parse_args([*base, "--no-progress"]), 100.0)
    assert not no_bar.progress and no_bar.prints_epochs
    quiet = train_config(parser.parse_args([*base, "--quiet"]), 100.0)
    assert not quiet.progress and not quiet.prints_epochs
