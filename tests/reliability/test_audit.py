"""Every audit case gives its expected outcome, and docs/reliability.md is the table of the outcomes."""

from __future__ import annotations

import pytest

from .registry import load_cases, render_table, run_case
from .render import DOC

CASES = load_cases()


@pytest.mark.parametrize("c", CASES, ids=[f"{c.area}: {c.input}" for c in CASES])
def test_case_outcome(c) -> None:
    run_case(c)


def test_reliability_doc_is_the_table_of_outcomes() -> None:
    assert CASES, "no audit cases registered"
    expected = render_table([(c, *run_case(c)) for c in CASES])
    assert DOC.exists(), f"{DOC} is missing; run python -m tests.reliability.render"
    assert DOC.read_text(encoding="utf-8") == expected, f"{DOC} is out of date; run python -m tests.reliability.render"
