"""The one exception type for a user's mistake, and the files that raise it.

``UserError`` means the input was wrong (a config key, a file, a checkpoint, an
image), not the code: the command line prints its first line and exits with status
2 (``PIXELWISE_DEBUG=1`` shows the traceback as well). Every other exception is a
bug and keeps its traceback. Each module's own error (``ConfigError``,
``CheckpointError``, ``DataError``, ``ModelError``, ...) subclasses it; it is a
``ValueError`` so that code catching the built-in still catches it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class UserError(ValueError):
    """Input that cannot work; the message names the file or key and what would work."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class CannotWriteError(UserError):
    """The system refused a write: a full disk, a read-only folder, a file in the way."""


def cannot_write(path: str | Path, err: OSError) -> str:
    """``cannot write PATH: no space left on device``: the path and the system's reason;
    a file where a folder of the path should be is named (the system says only "file
    exists" or "not a directory")."""
    blocking = next((p for p in Path(path).parents if p.is_file()), None)
    if blocking is not None and isinstance(err, (FileExistsError, NotADirectoryError)):
        return f"cannot write {path}: {blocking} is a file, not a folder"
    reason = err.strerror or str(err)
    return f"cannot write {path}: {reason.lower()}"


@contextlib.contextmanager
def writing(path: str | Path, error: type[UserError] = CannotWriteError) -> Iterator[None]:
    """An ``OSError`` while writing ``path`` as one ``error`` line naming the path and the
    reason (the disk is the user's to fix, not a bug)."""
    try:
        yield
    except OSError as err:
        raise error(cannot_write(path, err)) from err
