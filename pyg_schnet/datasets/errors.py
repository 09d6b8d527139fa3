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


class SymlinkLoopError(OSError):
    """A path (a data root, a raw file or a folder on the way to it) runs through a symbolic link loop;
    the message names the link and the loop."""


class DuplicateFramesWarning(UserWarning):
    """Frames of a data set repeat (identical atoms and positions): a random split may put copies of
    one frame into both the training and the test set."""
