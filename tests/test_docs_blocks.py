"""Every ```python block of README.md and docs/*.md runs as written, without a warning a newcomer would see.

Each block runs in a fresh Python process (default warning filters, one CPU thread, downloads
forbidden with ``PYG_SCHNET_OFFLINE=1``) in a working directory laid out the way a user of the
README has it: ``data/md17/raw/md17_ethanol.npz`` (the real 1,500-frame excerpt of ../shared/data),
``data/qm9/raw`` (the QM9 archive of the 20 real sample molecules, ``atomref.txt``,
``uncharacterized.txt``), ``data/iso17/raw/iso17/<fold>.db`` (the 40 real ISO17 rows) and
``runs/eth/model.pt`` (a tiny untrained SchNet in kcal/mol, as the training scripts write). A block
that cannot run in a test (it downloads, needs a GPU or torchrun, or trains for hours) carries
``<!-- docs-test: skip (reason) -->`` on the line before it and is skipped with that reason.

The examples of docs/examples/ run as their docstrings say, also without warnings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SKIP_MARK = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<reason>.+)\)\s*-->$")
#: Seconds one block may take (the slowest, BFGS and 100 MD steps with the tiny model, take a few).
BLOCK_TIMEOUT_S = 300
#: A warning as Python prints it on stderr: ``file:line: SomeWarning: message``.
WARNING_LINE = re.compile(r"\b\w*Warning: ")


@dataclass(frozen=True)
class Block:
    doc: Path
    index: int  # 0-based among the file's python blocks
    line: int  # line number of the block's first code line in the file (1-based)
    code: str
    skip_reason: Optional[str]

    @property
    def name(self) -> str:
        return str(self.doc.relative_to(REPO))

    @property
    def test_id(self) -> str:
        first = next((s.strip() for s in self.code.splitlines() if s.strip()), "")
        return f"{self.name} #{self.index}: {first[:50]}"


def python_blocks(doc: Path) -> List[Block]:
    """The ```python blocks of ``doc``, with the reason of a ``docs-test: skip`` comment right before one."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: List[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```python":
            i += 1
            continue
        end = next((k for k in range(i + 1, len(lines)) if lines[k].strip().startswith("```")), None)
        if end is None:
            raise ValueError(f"{doc}:{i + 1}: ```python block is never closed")
        before = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = SKIP_MARK.match(before)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(Block(doc, len(blocks), i + 2, code, mark.group("reason") if mark else None))
        i = end + 1
    return blocks


BLOCKS = [block for doc in DOC_FILES for block in python_blocks(doc)]


def run_python(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python ARGS`` in ``cwd`` as a user would start it: default warning filters, one thread, no
    downloads, no display."""
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONPATH")}
    env.update(PYG_SCHNET_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )


def check_clean_run(result: subprocess.CompletedProcess, what: str) -> None:
    """Exit status 0 and no warning on stderr; the failure message shows the output."""
    output = f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-8000:]}"
    assert result.returncode == 0, f"{what} failed (exit status {result.returncode}):\n{output}"
    warnings = [line for line in result.stderr.splitlines() if WARNING_LINE.search(line)]
    assert not warnings, f"{what} printed warnings a newcomer would see:\n" + "\n".join(warnings) + f"\n{output}"


@pytest.fixture(scope="session")
def user_folder(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory, load_repo_file: Callable[[str], ModuleType]
) -> Path:
    """A read-only master of the user's working directory (copy it before running anything in it)."""
    import torch
    from ase.build import molecule
    from ase.io import write

    from pyg_schnet import SchNet, save_model

    root = tmp_path_factory.mktemp("docs_user")
    md17_raw = root / "data" / "md17" / "raw"
    md17_raw.mkdir(parents=True)
    (md17_raw / "md17_ethanol.npz").symlink_to(shared_data / "md17" / "md17_ethanol.npz")
    # QM9 in its published raw layout, written from the real excerpts by the data set tests' builder; ISO17's
    # five folds each the 40 real rows
    datasets_conftest = load_repo_file("tests/datasets/conftest.py")
    datasets_conftest.Qm9Builder(shared_data).write_root(root / "data" / "qm9")
    for fold in datasets_conftest.ISO17_FOLDS:  # an ASE database is opened read-write: copies, not links
        target = root / "data" / "iso17" / "raw" / "iso17" / f"{fold}.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "iso17" / "iso17_eq_sample.db", target)
    torch.manual_seed(0)
    model = SchNet(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=25, rbf_stop=3.0, cutoff=3.0)
    model.units = {"energy": "kcal/mol", "length": "Angstrom"}  # what benchmarks/md17.py writes
    save_model(model, root / "runs" / "eth" / "model.pt")
    write(root / "start.xyz", molecule("CH3CH2OH"))  # the start structure of docs/examples/relax.py's command
    return root


@pytest.fixture
def user_cwd(user_folder: Path, tmp_path: Path) -> Path:
    """A fresh copy of the user's working directory (the MD17 raw file stays a link to ../shared/data)."""
    work = tmp_path / "work"
    shutil.copytree(user_folder, work, symlinks=True)
    return work


@pytest.mark.parametrize("block", BLOCKS, ids=[b.test_id for b in BLOCKS])
def test_docs_python_block_runs_as_written(block: Block, user_cwd: Path, tmp_path: Path) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"{block.name}:{block.line}: marked docs-test: skip ({block.skip_reason})")
    # padded so that a traceback's line numbers are the lines of the markdown file
    script = tmp_path / f"{block.doc.name}.py"
    script.write_text("\n" * (block.line - 1) + block.code, encoding="utf-8")
    result = run_python([str(script)], user_cwd)
    check_clean_run(result, f"the python block at {block.name}:{block.line} (traceback lines = lines of the file)")


#: The arguments of each example's command line in its docstring.
EXAMPLES: Dict[str, List[str]] = {
    "custom_model.py": [],
    "relax.py": ["runs/eth/model.pt", "start.xyz", "--fmax", "0.01", "--out", "relaxed.xyz"],
}


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_docs_example_script_runs_without_warnings(example: str, user_cwd: Path) -> None:
    """``python docs/examples/X.py ...`` as its docstring shows (what they compute is tested in
    tests/test_docs_example.py and tests/test_docs_relax.py)."""
    path = REPO / "docs" / "examples" / example
    command = " ".join(["python", f"docs/examples/{example}", *EXAMPLES[example]])
    assert command in path.read_text(encoding="utf-8"), f"{path}: its docstring no longer shows {command!r}"
    result = run_python([str(path), *EXAMPLES[example]], user_cwd)
    check_clean_run(result, command)
    if example == "relax.py":
        assert "(converged)" in result.stdout and (user_cwd / "relaxed.xyz").is_file()


def test_every_docs_example_script_is_run_here() -> None:
    assert sorted(p.name for p in (REPO / "docs" / "examples").glob("*.py")) == sorted(EXAMPLES)


def test_the_block_finder_sees_skip_marks_and_line_numbers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n```python\nx = 1\n```\n\n<!-- docs-test: skip (needs a GPU) -->\n\n```python\nimport torch\n```\n"
        "```\nnot python\n```\n",
        encoding="utf-8",
    )
    first, second = python_blocks(doc)
    assert (first.line, first.code, first.skip_reason) == (3, "x = 1\n", None)
    assert (second.line, second.code, second.skip_reason) == (9, "import torch\n", "needs a GPU")
    assert len(python_blocks(doc)) == 2
