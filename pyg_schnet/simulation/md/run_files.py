"""The files of an MD run written as it goes: ``trajectory`` and ``energies.csv`` stay readable, with
every frame and row so far, whatever ends the run (an error, SIGTERM, ``kill -9``, a full disk).

* ``trajectory``: ASE's ``traj`` format (:class:`ase.io.trajectory.Trajectory`). Each frame is
  appended and the file's header updated after the frame's data, then flushed, so a reader sees the
  frames written completely and nothing of one cut short.
* ``energies.csv``: a header, then one row per record (:func:`~pyg_schnet.simulation.md.result.csv_row`),
  flushed after each.

Both are opened at their first frame or row, so a run that fails before it has anything to record
creates neither. They are written under their final names (not a temporary file renamed at the end,
which a killed run lost); an earlier run's files of the same names in the folder are replaced when the
new run writes its first frame or row.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, Dict, Optional

from ase import Atoms

from pyg_schnet.simulation.md.result import csv_header, csv_row


class RunFiles:
    """``OUT/trajectory`` (when ``trajectory``) and ``OUT/energies.csv`` of one run (a context manager)."""

    def __init__(self, out: Path, trajectory: bool = True) -> None:
        self.out = Path(out)
        self.trajectory_path = self.out / "trajectory"
        self.energies_path = self.out / "energies.csv"
        self._want_trajectory = trajectory
        self._traj: Optional[Any] = None
        self._csv: Optional[IO[str]] = None
        self.frames = 0
        self.rows = 0

    def add_row(self, time_fs: float, potential_eV: float, kinetic_eV: float, temperature_K: float) -> None:
        """One row of ``energies.csv``, flushed."""
        if self._csv is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._csv = open(self.energies_path, "w", encoding="utf-8", newline="")
            self._csv.write(csv_header())
        self._csv.write(csv_row(time_fs, potential_eV, kinetic_eV, temperature_K))
        self._csv.flush()
        self.rows += 1

    def add_frame(self, atoms: Atoms) -> None:
        """One frame of ``trajectory`` (positions, momenta, energy and forces), flushed."""
        if not self._want_trajectory:
            return
        if self._traj is None:
            from ase.io.trajectory import Trajectory

            self.out.mkdir(parents=True, exist_ok=True)
            self._traj = Trajectory(str(self.trajectory_path), "w")
        self._traj.write(atoms)  # the ULM writer flushes after each frame
        self.frames += 1

    def written(self) -> Dict[str, str]:
        """``{'trajectory': path, 'energies': path}`` for the files that exist."""
        files: Dict[str, str] = {}
        if self.frames:
            files["trajectory"] = str(self.trajectory_path)
        if self.rows:
            files["energies"] = str(self.energies_path)
        return files

    def describe(self) -> str:
        """``3 trajectory frames and 12 energy rows in OUT`` (what a stopped run kept)."""
        return f"{self.frames} trajectory frames and {self.rows} energy rows in {self.out}"

    def close(self) -> None:
        if self._traj is not None:
            self._traj.close()
            self._traj = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def __enter__(self) -> "RunFiles":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
