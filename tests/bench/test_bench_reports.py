"""The peer table and the scale table say what the numbers are: ratios, slopes, markers."""

from __future__ import annotations

import pytest

from harness import peers, scale


def _row(config, case, impl, ms, **extra):
    return dict(
        config=config, case=case, impl=impl, median_s=ms / 1e3, median_cpu_s=ms / 2e3, atoms="9", batch_size=32, **extra
    )


def _meta():
    return dict(
        command="python benchmarks/peers.py",
        device="2 x CPU",
        threads=1,
        date="2026-11-22",
        versions=dict(torch="2.13.0", torch_geometric="2.8.1", schnetpack="2.1.1"),
        backend=dict(torch_scatter=True, torch_cluster=False),
        repeats=21,
        warmup=3,
        configs=dict(
            paper=dict(
                description="64/64/3",
                parameters=dict(ours_sparse=10, pyg=8),
                unavailable={},
                md_call=dict(ours_sparse="bare model call: pyg_schnet.simulation.ase not available"),
            )
        ),
    )


def test_ratios_are_peer_time_over_ours():
    rows = [
        _row("paper", "ethanol_forces", "ours_sparse", 10.0),
        _row("paper", "ethanol_forces", "pyg", 25.0),
        _row("paper", "ethanol_forces", "schnetpack", 40.0),
        _row("paper", "md_call", "ours_sparse", 2.0),
    ]
    q = {r["case"]: r for r in peers.ratios(rows)}
    assert q["ethanol_forces"]["ours_vs_pyg"] == pytest.approx(2.5)
    assert q["ethanol_forces"]["ours_vs_schnetpack_cpu"] == pytest.approx(4.0)
    assert "ours_vs_pyg" not in q["md_call"]


def test_markdown_marks_a_bare_md_call_and_states_the_gaussian_width():
    rows = [
        _row("paper", "md_call", "ours_sparse", 2.0, how="bare model call: calculator missing"),
        _row("paper", "md_call", "pyg", 3.0),
        dict(config="paper", case="md_call", impl="schnetpack", skipped="ImportError", atoms="9", batch_size=1),
    ]
    report = dict(meta=_meta(), results=rows, ratios=peers.ratios(rows))
    text = peers.markdown(report)
    assert "calculator not available" in text and "| 1.50 (1.50) | - (-) |" in text and "| n/a |" in text
    assert "gamma" in text and "python benchmarks/peers.py" in text and "2026-11-22" in text


def test_scale_slopes_and_table():
    rows = []
    for n in (100, 1000, 10000):
        rows.append(
            dict(
                mode="inference",
                atoms=n,
                pairs=15 * n,
                pairs_per_atom=30.0,
                median_s=1e-4 * n,
                peak_memory_mib=0.01 * n**1.2,
            )
        )
    rows.append(
        dict(mode="train_forces", atoms=100, pairs=1500, pairs_per_atom=30.0, median_s=0.1, peak_memory_mib=None)
    )
    rows.append(dict(mode="train_forces", atoms=1000, pairs=15000, pairs_per_atom=30.0, skipped="too big"))
    fits = scale.slopes(rows)
    assert fits["inference"]["time"] == pytest.approx(1.0)
    assert fits["inference"]["memory"] == pytest.approx(1.2)
    assert fits["train_forces"]["time"] is None  # one measured size only
    assert scale.slopes(rows, min_atoms=1000)["inference"]["pairs"] == pytest.approx(1.0)
    meta = dict(_meta(), config=dict(description="scale"), modes=["inference", "train_forces"], repeats=3, warmup=1)
    text = scale.markdown(
        dict(meta=meta, results=rows, slopes=fits, slopes_large=scale.slopes(rows, 1000), slope_min_atoms=1000)
    )
    assert "| 10,000 |" in text and "skipped" in text and "N=1,000, train_forces: too big" in text


def test_docs_block_replacement(tmp_path, load_repo_file):
    script = load_repo_file("benchmarks/peers.py")
    path = tmp_path / "doc.md"
    text = "intro\n<!-- bench:peers:begin -->\nold\n<!-- bench:peers:end -->\nrest\n"
    out = script.replace_block(text, "peers", "new table\n", path)
    assert out == "intro\n<!-- bench:peers:begin -->\nnew table\n<!-- bench:peers:end -->\nrest\n"
    with pytest.raises(SystemExit, match="doc.md: no block"):
        script.replace_block(text, "scale", "x", path)


def test_cli_rejects_unknown_names(load_repo_file):
    script = load_repo_file("benchmarks/peers.py")
    with pytest.raises(SystemExit):
        script.parse_args(["--configs", "paper,huge"])
    args = script.parse_args(["--quick"])
    assert args.repeats == 1 and args.batch_size == 4 and args.configs == ["paper", "common"]
