"""The README's quick example runs as written and its two commands are the Makefile's."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_example_runs():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README quick example", "exec"), namespace)
    energy, forces = namespace["energy"], namespace["forces"]
    assert energy.shape == (1,) and forces.shape == (9, 3)
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()


def test_readme_shows_exactly_the_two_make_commands():
    text = README.read_text()
    shell = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = [line.strip() for block in shell for line in block.splitlines() if line.strip().startswith("make ")]
    assert commands == ["make demo", "make test"]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
