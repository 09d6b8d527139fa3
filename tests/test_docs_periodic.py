"""The Python example of docs/periodic.md runs (its assertions included)."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "periodic.md"


def test_periodic_doc_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/periodic.md has no python example"
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {})
