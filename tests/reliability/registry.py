"""Registry of the reliability audit: hostile or careless inputs and the outcome each must produce.

A case is a function that receives a fresh temporary folder, builds one bad input there and feeds it to
the library. It either raises (``expect`` is the exception type, ``match`` a regular expression its
message must match) or, for faults that are handled rather than refused (a stale cache rebuilt, a
planted pickle left unexecuted), returns a one-line description of what happened (``expect=None``;
``match`` must match that line). ``tests/reliability/test_audit.py`` runs every case, and checks that
``docs/reliability.md`` is the table :func:`render_table` makes from the outcomes, so a regression in
either shows in CI. Regenerate the table with ``python -m tests.reliability.render``.

Add cases in a module ``tests/reliability/cases_<area>.py`` with the :func:`case` decorator.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Type

#: Areas, in the order the table lists them.
AREAS = ("data", "model", "periodic", "training", "files", "simulation", "distributed")


@dataclass(frozen=True)
class Case:
    """One audited input: ``area`` groups the table, ``input`` says what was fed in."""

    area: str
    input: str
    run: Callable[[Path], Optional[str]]
    expect: Optional[Type[BaseException]]
    match: str


CASES: List[Case] = []


def case(area: str, input: str, expect: Optional[Type[BaseException]], match: str):
    """Register the decorated ``run(tmp: Path)`` as a :class:`Case`."""
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; add it to AREAS")

    def register(run: Callable[[Path], Optional[str]]) -> Callable[[Path], Optional[str]]:
        CASES.append(Case(area, input, run, expect, match))
        return run

    return register


def load_cases() -> List[Case]:
    """Import every ``cases_*`` module of this package (once) and return all cases, table order."""
    package = Path(__file__).resolve().parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("cases_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return sorted(CASES, key=lambda c: AREAS.index(c.area))


def _normalise(text: str, tmp: Path) -> str:
    """One line, temporary paths replaced by ``<tmp>``, memory addresses and pids blanked."""
    text = text.replace(str(tmp.resolve()), "<tmp>").replace(str(tmp), "<tmp>")
    text = re.sub(r"0x[0-9a-f]{6,}", "0x…", text)
    text = re.sub(r"\.tmp-\d+", ".tmp-<pid>", text)
    return " ".join(text.split())


def run_case(c: Case) -> Tuple[str, str]:
    """Run ``c`` in a fresh folder; return ``(outcome, message)`` with outcome ``'raises X'`` or
    ``'handled'``. Raises :class:`AssertionError` when the outcome is not the expected one."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        try:
            result: Any = c.run(tmp)
        except BaseException as exc:  # noqa: BLE001 - the point is to look at whatever came out
            if c.expect is None or not isinstance(exc, c.expect):
                raise AssertionError(f"{c.input}: expected {c.expect}, got {type(exc).__name__}: {exc}") from exc
            message = _normalise(str(exc), tmp)
            if not re.search(c.match, message):
                raise AssertionError(f"{c.input}: message {message!r} does not match {c.match!r}") from exc
            return f"raises {type(exc).__name__}", message
        if c.expect is not None:
            raise AssertionError(f"{c.input}: expected {c.expect.__name__}, nothing was raised (got {result!r})")
        message = _normalise(str(result), tmp)
        if not re.search(c.match, message):
            raise AssertionError(f"{c.input}: outcome {message!r} does not match {c.match!r}")
        return "handled", message


HEADER = """# Reliability audit

Hostile and careless inputs the test suite feeds to pyg-schnet, and what each produces. Every row is a
test (`tests/reliability/`); CI fails when an outcome changes or this table is out of date.
Regenerate it with `python -m tests.reliability.render` after adding a case.

| area | input | outcome | message |
|---|---|---|---|
"""


def render_table(rows: List[Tuple[Case, str, str]]) -> str:
    """The Markdown of docs/reliability.md for ``(case, outcome, message)`` rows."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [f"| {c.area} | {cell(c.input)} | {outcome} | {cell(message)} |" for c, outcome, message in rows]
    return HEADER + "\n".join(lines) + "\n"
