"""The one exception type for a user's mistake, and the files that raise it.

``UserError`` means the input was wrong (a config key, a file, a checkpoint, an
image), not the code: the command line prints its first line and exits with status
2 (``PIXELWISE_DEBUG=1`` shows the traceback as well). Every other exception is a
bug and keeps its traceback. Each module's own error (``ConfigError``,
``CheckpointError``, ``DataError``, ``ModelError``, ...) subclasses it; it is a
``ValueError`` so that code catching the built-in still catches it.
"""

from __future__ import annotations


class UserError(ValueError):
    """Input that cannot work; the message names the file or key and what would work."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""
