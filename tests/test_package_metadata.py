"""The installed distribution's metadata names its license and its links (what `pip show` prints).

Read from the installed (editable) package: after editing pyproject.toml, re-install it
(``python -m pip install --no-deps --no-build-isolation -e .``) or these tests see the old metadata.
Both are read in a subprocess in isolated mode (``-I``) from outside the checkout, as an installed user
sees them: from the repository root, Python would find a build's ``pyg_schnet.egg-info`` there first.
"""

import json
import re
import subprocess
import sys

import pytest

import pyg_schnet

PAPER = "https://arxiv.org/abs/1706.08566"

READ_METADATA = """
import importlib.metadata as m, json
md = m.metadata("pyg-schnet")
files = [str(f) for f in m.files("pyg-schnet") or []]
print(json.dumps(dict(meta=md.json, files=files)))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(metadata as importlib.metadata's JSON form: lower-case keys, lists for repeated fields, files)."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", READ_METADATA],
        cwd=tmp_path_factory.mktemp("outside"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    meta = out["meta"]
    assert meta["version"] == pyg_schnet.__version__, (
        f"the installed metadata is of version {meta['version']}, the tree is {pyg_schnet.__version__}: "
        "re-install with python -m pip install --no-deps --no-build-isolation -e ."
    )
    return meta, out["files"]


@pytest.fixture(scope="module")
def meta(installed):
    return installed[0]


def test_license_is_an_spdx_expression_with_its_file(installed):
    meta = installed[0]
    # PEP 639 (core metadata 2.4): License-Expression, the license text as License-File, and neither
    # the superseded free-text License field nor a license classifier
    assert tuple(int(p) for p in meta["metadata_version"].split(".")) >= (2, 4)
    assert meta["license_expression"] == "MIT"
    assert "LICENSE" in meta.get("license_file", [])
    assert not meta.get("license")
    assert not [c for c in meta.get("classifier", []) if c.startswith("License ::")]
    files = installed[1]
    assert any(f.endswith("licenses/LICENSE") for f in files), files


def test_project_urls_name_the_paper_and_nothing_invented(meta):
    urls = dict(entry.split(", ", 1) for entry in meta.get("project_url", []))
    assert urls.get("Paper") == PAPER
    # no home page or repository address exists yet: none is listed
    assert not {label.lower() for label in urls} & {"homepage", "home-page", "source", "repository"}
    assert all(re.fullmatch(r"https://\S+", url) for url in urls.values()), urls


def _pip_show(tmp_path, *flags):
    return subprocess.run(
        [sys.executable, "-I", "-m", "pip", "show", *flags, "pyg-schnet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _pip_version():
    # from the metadata, not `import pip`: pip imports the standard library's distutils, after which
    # setuptools (which torch.compile's C++ builder imports) refuses to load in this process
    from importlib.metadata import version

    return tuple(int(p) for p in re.findall(r"\d+", version("pip"))[:2])


@pytest.mark.skipif(_pip_version() < (25, 0), reason="pip < 25.0 prints only the superseded License field")
def test_pip_show_prints_the_license_expression(tmp_path):
    proc = _pip_show(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "License-Expression: MIT" in proc.stdout.splitlines()


def test_pip_show_verbose_lists_the_paper(tmp_path):
    proc = _pip_show(tmp_path, "-v")  # Project-URLs in pip show -v since pip 22.1
    assert proc.returncode == 0, proc.stderr
    assert f"  Paper, {PAPER}" in proc.stdout.splitlines()
