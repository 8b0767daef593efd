"""Atomic file writes: a crash or a full disk never leaves a half-written file behind.

A failed write (a full disk, a quota, a file size limit, a read-only or unwritable place) raises a
:class:`PhysodeError` naming the file, the cause and the fix, and leaves what was there before as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from .errors import PhysodeError

#: The fix for a write that failed for each cause (others: another location).
_FIXES = {
    errno.ENOSPC: "free some space or choose another location",
    errno.EDQUOT: "free some space (the disk quota is used up) or choose another location",
    errno.EFBIG: "raise the file size limit (ulimit -f) or choose another location",
    errno.EACCES: "choose a writable location",
    errno.EPERM: "choose a writable location",
    errno.EROFS: "choose a writable location (this one is read-only)",
}


@contextlib.contextmanager
def atomic_write(path, what: str = "file"):
    """Open a temporary file beside ``path`` for binary writing; rename it onto ``path`` on success.

    Parent folders are created. On any error the temporary file is removed and an existing file at
    ``path`` is left untouched; an OSError while writing, syncing or renaming (say a full disk) becomes a
    :class:`PhysodeError` naming ``path`` (see :func:`write_error`).
    """
    named_as_folder = os.fspath(path).endswith(("/", os.sep))  # Path() would drop the slash and write a file there
    path = Path(path)
    if path.is_dir() or named_as_folder:
        raise PhysodeError(f"cannot write the {what} to {str(path)!r}: it names a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, what, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # a full disk can show only here (delayed allocation, network filesystems)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # what the block writes to is the handle: its OSErrors are this write's
            raise write_error(path, what, exc) from None
        raise


def atomic_append(path, data: bytes, what: str = "file") -> None:
    """Append ``data`` to the file at ``path`` (created if missing) whole or not at all.

    One ``write`` on an ``O_APPEND`` descriptor puts it after whatever is there at that moment, so that what two
    processes append never interleaves within ``data`` and a process killed mid-way leaves nothing cut short. A
    write that fails or falls short (a full disk takes part of it) is undone: the file is cut back to its old length
    and the OSError becomes a :class:`PhysodeError` (see :func:`write_error`).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise write_error(path, what, exc) from None
    try:
        end = os.fstat(fd).st_size
        try:
            rest = memoryview(data)
            while rest:  # more than one write only after a short one, which the next write then explains
                rest = rest[os.write(fd, rest):]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise write_error(path, what, exc) from None
    finally:
        os.close(fd)


def write_error(path, what: str, exc: OSError) -> PhysodeError:
    """The PhysodeError for writing the ``what`` to ``path`` that failed with ``exc``: the file, the cause, the fix."""
    fix = _FIXES.get(exc.errno, "choose another location")
    return PhysodeError(f"cannot write the {what} to {str(path)!r} ({exc.strerror or exc}); {fix}")


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
