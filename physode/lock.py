"""The lock of an output folder: one physode process at a time writes into a run folder.

Two runs writing into one folder would mix their checkpoints and metrics into files that belong to neither, so
``physode train``, ``compare``, ``evaluate`` and ``plot`` (and :func:`physode.fit` with an ``out_dir``) hold their
folder's lock while they work, and a second one is refused at once, before it changes anything there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import PhysodeError
from .files import make_folder, write_error

#: The lock file in a held folder; it holds the holder's pid, so that a refusal can name it.
LOCK_NAME = ".physode.lock"


@contextlib.contextmanager
def folder_lock(folder, what: str = "run folder"):
    """Hold ``folder`` (made if missing) for this process within the block; yields it as a Path.

    Another process that asks for it meanwhile gets a one-line :class:`PhysodeError` naming the folder and the
    holder's pid, without waiting. The lock is an advisory ``flock`` on ``folder/.physode.lock``: the system
    drops it when its process ends, however it ends (SIGKILL too), so a crash never leaves a folder locked; the
    file such a crash leaves behind holds nothing and is taken over by the next run. Folders made for the block
    are removed again if it leaves them empty (a run refused by a later check leaves nothing behind).

    Not reentrant: a ``flock`` belongs to an open file, not to a process, so a process that holds a folder is
    refused it a second time. Nested work locks other folders (compare its run folder, the training of each
    model that model's subfolder).
    """
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # leaf first
    make_folder(folder, what)
    path = folder / LOCK_NAME
    fd = _acquire(path, folder, what)
    try:
        yield folder
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still held: whoever opened this file meanwhile sees it gone and opens the new one
        os.close(fd)
        for empty in made:
            try:
                empty.rmdir()
            except OSError:  # not empty (the run wrote into it, or another process took it): kept
                break


def _acquire(path: Path, folder: Path, what: str) -> int:
    """Lock ``path``; returns its descriptor, with this process's pid written into the file."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another process removed the folder it had made (and left empty) just now
            make_folder(folder, what)
            continue
        except OSError as exc:
            raise write_error(path, "lock file", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            holder = f"pid {holder}" if holder.isdigit() else "pid unknown: it has only just started"
            raise PhysodeError(f"the {what} {str(folder)!r} is in use by another physode process ({holder}); "
                               "wait for it to end, stop it, or choose another folder") from None
        except OSError as exc:  # a filesystem without locks
            os.close(fd)
            raise PhysodeError(f"cannot lock the {what} {str(folder)!r} ({exc.strerror or exc}); "
                               "choose a folder on a local disk") from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            with contextlib.suppress(OSError):  # the pid only informs a refusal: a full disk does not stop the run here
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # its holder released and removed this file between our open and our lock: take the new one
