"""Atomic file writes: a crash or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import PhysodeError


@contextlib.contextmanager
def atomic_write(path, what: str = "file"):
    """Open a temporary file beside ``path`` for binary writing; rename it onto ``path`` on success.

    Parent folders are created. On any error the temporary file is removed and an existing file at
    ``path`` is left untouched. Unwritable locations raise a :class:`PhysodeError` naming ``path``.
    """
    named_as_folder = os.fspath(path).endswith(("/", os.sep))  # Path() would drop the slash and write a file there
    path = Path(path)
    if path.is_dir() or named_as_folder:
        raise PhysodeError(f"cannot write the {what} to {str(path)!r}: it names a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PhysodeError(
            f"cannot write the {what} to {str(path)!r} ({exc.strerror or exc}); choose a writable location"
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_folder(path, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents) if needed; unwritable places raise a :class:`PhysodeError`."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "a file is in the way" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or exc
        raise PhysodeError(f"cannot create the {what} {str(path)!r} ({reason}); choose another location") from None
    return path


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux: /proc/self/status).

    Setting it to read it (``os.umask``) would, for that moment, let files that other threads create be
    world-writable; that is the fallback only where /proc is missing.
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask
