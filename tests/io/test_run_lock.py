"""One writer per run folder (issue 20, defect 1): a second run into a folder another live run writes is
refused naming the holder; the lock of a killed run is taken over; the lock goes when a run ends."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pyg_schnet.io import run_lock
from pyg_schnet.io.run_lock import LOCK_NAME, LockHolder, RunFolderLocked, RunLock

HOLD = textwrap.dedent(
    """
    import sys, time
    from pyg_schnet.io.run_lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def holder(tmp_path):
    """Starts a process that holds the lock of a folder; yields ``(folder, process)``; kills it at the end."""
    started = []

    def start(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(proc)
        line = proc.stdout.readline()
        assert line.strip() == "locked", proc.stderr.read()
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_a_second_run_into_a_folder_another_process_writes_is_refused(tmp_path, holder):
    folder = tmp_path / "run"
    proc = holder(folder)
    with pytest.raises(
        RunFolderLocked, match=rf"run is being written by another run \(process {proc.pid} on this host"
    ):
        RunLock(folder).acquire()
    try:
        RunLock(folder).acquire()
    except RunFolderLocked as exc:
        assert "started 20" in str(exc) and "one run per output folder" in str(exc)
    assert (folder / LOCK_NAME).is_file()  # the holder's lock stays
    assert LockHolder.parse((folder / LOCK_NAME).read_text()).pid == proc.pid


def test_the_lock_of_a_killed_run_is_taken_over_with_a_message(tmp_path, holder):
    folder = tmp_path / "run"
    proc = holder(folder)
    proc.send_signal(signal.SIGKILL)  # no cleanup: the lock file stays behind with the dead pid
    proc.wait()
    assert LockHolder.parse((folder / LOCK_NAME).read_text()).pid == proc.pid
    said = []
    with RunLock(folder, say=said.append):
        assert LockHolder.parse((folder / LOCK_NAME).read_text()).pid == os.getpid()
    assert len(said) == 1 and f"left by process {proc.pid} on this host" in said[0] and "no longer running" in said[0]
    assert not (folder / LOCK_NAME).exists()


def test_without_flock_a_dead_pid_is_stale_and_a_live_one_holds(tmp_path, monkeypatch):
    """The ``O_CREAT | O_EXCL`` scheme (no flock, e.g. Windows): judged by the recorded process."""
    monkeypatch.setattr(run_lock, "_fcntl", None)
    folder = tmp_path / "run"
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    me = LockHolder.this_process()
    (folder / LOCK_NAME).write_text(LockHolder(dead, me.host, "2026-01-01T00:00:00+00:00").text())
    said = []
    with RunLock(folder, say=said.append):
        assert LockHolder.parse((folder / LOCK_NAME).read_text()).pid == os.getpid()
    assert said and f"process {dead} on this host" in said[0]
    (folder / LOCK_NAME).write_text(LockHolder(os.getppid(), me.host, "2026-01-01T00:00:00+00:00").text())
    with pytest.raises(RunFolderLocked, match=rf"process {os.getppid()} on this host, started 2026-01-01"):
        RunLock(folder).acquire()
    (folder / LOCK_NAME).write_text(LockHolder(dead, "elsewhere", "2026-01-01T00:00:00+00:00").text())
    with pytest.raises(RunFolderLocked, match=r"on host elsewhere.*if that run is gone, remove .*\.run\.lock"):
        RunLock(folder).acquire()  # a pid of another host is never judged from here


def test_the_lock_is_gone_after_a_run_and_after_an_exception(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        assert (folder / LOCK_NAME).is_file()
        (folder / "model.pt").write_text("x")
    assert not (folder / LOCK_NAME).exists() and (folder / "model.pt").is_file()
    with pytest.raises(RuntimeError, match="boom"):
        with RunLock(folder):
            raise RuntimeError("boom")
    assert not (folder / LOCK_NAME).exists() and folder.is_dir()  # not created by this lock: kept
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError, match="boom"):
        with RunLock(fresh):
            raise RuntimeError("boom")
    assert not fresh.exists()  # created by the lock and left empty by the failed run: removed


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    folder = tmp_path / "run"
    with RunLock(folder):
        with RunLock(folder):  # e.g. run_md inside pyg-schnet md
            pass
        assert (folder / LOCK_NAME).is_file()  # still held by the outer run
    assert not (folder / LOCK_NAME).exists()
    with RunLock(folder):  # and can be taken again
        pass


def _tiny_md17(tmp_path: Path) -> Path:
    from ase.build import molecule

    atoms = molecule("H2O")
    rng = np.random.default_rng(0)
    R = atoms.positions + rng.normal(scale=0.05, size=(40, 3, 3))
    path = tmp_path / "md17_ethanol.npz"
    np.savez(path, R=R, z=atoms.numbers, E=rng.normal(-47000.0, 2.0, size=(40, 1)), F=rng.normal(size=R.shape))
    return path


def test_a_training_run_into_a_locked_folder_is_refused_before_it_writes(tmp_path, holder):
    from pyg_schnet.cli import main

    out = tmp_path / "run"
    proc = holder(out)
    flags = ["train", "md17", "--raw-file", str(_tiny_md17(tmp_path)), "--root", str(tmp_path / "data")]
    flags += ["--out", str(out), "--n-train", "24", "--n-val", "8", "--max-epochs", "1", "--no-progress"]
    flags += ["--hidden-channels", "8", "--num-filters", "8", "--num-interactions", "1", "--num-gaussians", "20"]
    with pytest.raises(RunFolderLocked, match=rf"run is being written by another run \(process {proc.pid}"):
        main([*flags, "--overwrite"])  # --overwrite would have removed the other run's files
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_only_rank_0_takes_the_lock(tmp_path, holder):
    """Under torchrun the other ranks never write, so they take no lock (and do not fail on it)."""
    from pyg_schnet.experiments.runner import out_folder_lock
    from pyg_schnet.train.distributed import DistInfo

    out = tmp_path / "run"
    holder(out)
    args = argparse.Namespace(out=out, resume=False, overwrite=False)
    with out_folder_lock(args, DistInfo(world_size=1, rank=1)):  # a rank > 0 (no process group here)
        pass
    with pytest.raises(RunFolderLocked):
        with out_folder_lock(args, DistInfo()):
            pass


def test_a_trainer_used_directly_is_refused_a_folder_another_run_writes(tmp_path, holder):
    """Library users who build a Trainer without run_experiment get the same lock (Trainer.fit)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from _trainer_tiny_data import UNITS, synthetic_molecules, tiny_model

    from pyg_schnet.train import TrainConfig, Trainer

    folder = tmp_path / "run"
    proc = holder(folder)
    data = synthetic_molecules(6)
    trainer = Trainer(tiny_model(), data[:4], data[4:], folder, TrainConfig(max_epochs=1, progress=False), units=UNITS)
    with pytest.raises(RunFolderLocked, match=rf"process {proc.pid} on this host"):
        trainer.fit()
    assert not (folder / "log.csv").exists() and not (folder / "model.pt").exists()
    proc.kill()
    proc.wait()
    trainer.fit()  # the killed holder's lock is taken over
    assert (folder / "model.pt").exists() and not (folder / LOCK_NAME).exists()
