"""The errors of the data sets; every message names the file and the place at fault."""

from __future__ import annotations


class RawFileError(ValueError):
    """A raw file is malformed, corrupt, truncated or physically absurd; the message names the file and the
    place (line, key, frame, row or molecule)."""


class RawFilesMissingError(FileNotFoundError):
    """Raw files are missing and could not be downloaded; the message lists each one."""


class DownloadVerificationError(OSError):
    """A downloaded file failed verification (size, archive integrity, counts); it was discarded."""


class ProcessedFileError(ValueError):
    """A processed file cannot be trusted (not tensors-only, another layout, unreadable); it is rebuilt."""
