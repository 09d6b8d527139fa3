"""Audit cases: damaged model and checkpoint files, stale temporaries, bad raw-file links (issue 8,
defects 9, 10, 12 and 13)."""

from __future__ import annotations

from pathlib import Path

import torch

from pyg_schnet.experiments.protocols import md17
from pyg_schnet.train import load_model, save_model

from .cases_training import tiny_data, trainer
from .registry import case

#: A process id above Linux's largest (``pid_max`` <= 2^22): never alive.
DEAD_PID = 2**22 + 1


def _flip_a_byte_inside(path: Path, tensor: torch.Tensor) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.find(tensor.detach().contiguous().numpy().tobytes())
    assert at >= 0
    raw[at + 5] ^= 0x01
    path.write_bytes(bytes(raw))


@case(
    "files",
    "model.pt with one flipped byte in a weight (loaded silently before)",
    ValueError,
    r"model\.pt: checksum mismatch",
)
def _(tmp: Path):
    model = tiny_data.tiny_model()
    save_model(model, tmp / "model.pt")
    _flip_a_byte_inside(tmp / "model.pt", model.representation.embedding.weight)
    load_model(tmp / "model.pt")


@case("files", "checkpoint.pt with one flipped byte, then --resume", ValueError, r"checkpoint\.pt: checksum mismatch")
def _(tmp: Path):
    run = trainer(tmp)
    run.fit()
    _flip_a_byte_inside(tmp / "checkpoint.pt", run.model.head.net[0].weight)
    trainer(tmp, max_epochs=2).fit(resume=True)


@case("files", "model.pt of the old format pyg_schnet.model/1 (no checksum, no units)", None, r"loads; units")
def _(tmp: Path) -> str:
    model = tiny_data.tiny_model()
    torch.save(
        {"format": "pyg_schnet.model/1", "config": dict(model.config), "state_dict": model.state_dict()},
        tmp / "model.pt",
    )
    return f"loads; units {load_model(tmp / 'model.pt').units}"


@case("files", "load_model on an empty file", ValueError, r"model\.pt: the file is empty")
def _(tmp: Path):
    (tmp / "model.pt").write_bytes(b"")
    load_model(tmp / "model.pt")


@case("files", "load_model on a text file", ValueError, r"model\.pt: not a file written by torch\.save")
def _(tmp: Path):
    (tmp / "model.pt").write_text("weights: none\n")
    load_model(tmp / "model.pt")


@case("files", "run folder with a .checkpoint.pt.tmp-PID of a killed writer", None, r"removed .*\.checkpoint\.pt\.tmp-")
def _(tmp: Path) -> str:
    stale = tmp / f".checkpoint.pt.tmp-{DEAD_PID}"
    stale.write_bytes(b"\0" * 1024)
    trainer(tmp, max_epochs=0).fit()
    assert not stale.exists()
    return f"removed {stale} when training started"


@case(
    "files",
    "benchmarks/md17.py --raw-file pointing to a text file (left a link that broke the next run)",
    ValueError,
    r"md17_ethanol\.npz",
)
def _(tmp: Path):
    text = tmp / "notes.npz"
    text.write_text("hello\n")
    try:
        md17.main(["--raw-file", str(text), "--root", str(tmp / "data"), "--out", str(tmp / "out"), "--no-progress"])
    finally:
        link = tmp / "data" / "raw" / md17.raw_file_name("ethanol")
        assert not link.is_symlink(), "the link to the bad file was left behind"
