"""``python -m tests.reliability.render``: run every audit case and write docs/reliability.md."""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import load_cases, render_table, run_case

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def main() -> None:
    torch.set_num_threads(1)
    rows = [(c, *run_case(c)) for c in load_cases()]
    DOC.write_text(render_table(rows), encoding="utf-8")
    print(f"{DOC}: {len(rows)} cases")


if __name__ == "__main__":
    main()
