"""Files that crashes and concurrent processes cannot corrupt: atomic writes, folder locks.

**Atomic writes**: a file is either the old one or the complete new one, never half.

A crash, a full disk or an exception half-way through writing a checkpoint, a sample grid
or a downloaded data set must not leave a truncated file behind under the final name, where
the next run would trust it. The recipe used here is the standard POSIX one:

1. write to a fresh temporary file in the *same directory* (so step 3 is a rename within
   one file system, which is atomic);
2. flush and ``fsync`` it, so its bytes are on disk before its name is;
3. ``os.replace`` it onto the final name (atomic: readers see the old file or the new one);
4. on any error, delete the temporary file and leave the old file untouched.

Step 4 cannot run when the process is killed (``kill -9``, a power cut) between steps 1
and 3: the temporary file stays behind. The next write to the same file removes such
leftovers: temporary files of exactly this recipe's name for that file, ``.<name>.<16 hex
digits>.tmp``, not modified for ``STALE_AFTER_S`` (ten minutes). A concurrent writer's
file is left alone: every writer in tinygan streams its bytes without pausing, so its file
was created or written to moments ago (the slowest, a download, writes each megabyte as it
arrives: ten minutes without a write would mean under 2 KB/s).

::

    with atomic_write("samples/step_1000.png") as f:
        image.save(f, format="PNG")

**Folder locks**: a folder written by one process at a time. Atomic writes keep each file
whole, but two processes writing one run folder would still leave a folder whose files
come from two runs (one's ``config.json``, the other's checkpoint). :class:`FolderLock`
holds an exclusive lock on ``<folder>/.lock`` (``fcntl.flock`` on POSIX, ``msvcrt.locking``
on Windows), which holds the holder's process id for the message of whoever is refused.
The operating system drops the lock when its process ends, however it ends (``kill -9``
included), so a lock whose holder is dead is simply taken over: no stale lock ever needs
deleting by hand. The holder deletes the file when it lets go.

::

    lock = FolderLock("runs/gan")
    lock.acquire()  # FolderInUse(pid) while another live process holds it
    try:
        ...  # write the run's files
    finally:
        lock.release()
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

try:  # POSIX
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

STALE_AFTER_S = 600.0  # a temporary file unmodified this long was left by a killed writer
LOCK_NAME = ".lock"  # the lock file of a folder


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block ends without error.

    The temporary file is named ``.<name>.<random>.tmp`` beside ``path``; it is created
    with the usual ``0o666 & ~umask`` permissions, so the final file gets the same
    permissions as one written with ``open(path, "wb")``. The parent directory must exist.
    Temporary files that killed writers left beside ``path`` are removed first (see the
    module docstring).

    Args:
        path: the final file name.

    Yields:
        A binary file object open for writing.

    Raises:
        Whatever the block raises, after removing the temporary file; ``path`` is then
        exactly as it was before (absent, or the old file).
    """
    path = Path(path)
    _remove_stale_temps(path)
    tmp, fd = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temp_beside(path: Path) -> tuple[Path, int]:
    """Create a new, empty, uniquely named file in ``path``'s directory; return it and its fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:  # O_EXCL: a name collision (1 in 2**64) just draws another name
        # The name _remove_stale_temps recognises: change both together.
        tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


def _remove_stale_temps(path: Path) -> None:
    """Delete ``path``'s temporary files not modified for ``STALE_AFTER_S`` seconds.

    Best effort: a file that vanishes meanwhile (another writer removed it), or a folder or
    file that cannot be listed or deleted, is skipped: leftovers never make a write fail.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{16}}\.tmp")
    cutoff = time.time() - STALE_AFTER_S
    try:
        with os.scandir(path.parent) as entries:
            temps = [entry for entry in entries if pattern.fullmatch(entry.name)]
    except OSError:
        return
    for entry in temps:
        with contextlib.suppress(OSError):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)


def refuse_to_replace(
    folder: str | os.PathLike[str], names: Iterable[str], overwrite: bool
) -> None:
    """Stop (SystemExit, naming them) when files ``names`` of an earlier run are in
    ``folder`` and ``overwrite`` is False: a run never replaces another's results unasked.

    For a program that writes its results only at the end, so it checks before it starts.
    """
    found = [name for name in names if (Path(folder) / name).exists()]
    if found and not overwrite:
        raise SystemExit(
            f"{Path(folder).resolve()} already holds the results of an earlier run "
            f"({', '.join(found)}). Use --overwrite to replace them, or another --out folder."
        )


class FolderInUse(RuntimeError):
    """Another live process holds the lock of ``folder``.

    ``pid`` is its process id; None where it could not be read (the holder had only just
    taken the lock and not yet written it).
    """

    def __init__(self, folder: Path, pid: int | None) -> None:
        self.folder, self.pid = folder, pid
        who = "another process" if pid is None else f"process {pid}"
        if pid == os.getpid():
            who += " (this one)"
        super().__init__(f"{folder} is in use by {who}, which holds {folder / LOCK_NAME}")


# A lock is refused while a probe (check_unlocked) holds it for a moment: try again a few
# times before calling the folder busy. A real holder keeps it far longer than this.
_LOCK_TRIES, _LOCK_RETRY_S = 10, 0.02
_WINDOWS_LOCKED_BYTE = 1 << 20  # msvcrt locks bytes: one far from the pid, which stays readable
# The errors of a lock that another holder has (flock: EWOULDBLOCK; msvcrt: EACCES, EDEADLK).
_HELD = {getattr(errno, name) for name in ("EWOULDBLOCK", "EAGAIN", "EACCES", "EDEADLK")
         if hasattr(errno, name)}  # fmt: skip


class FolderLock:
    """An exclusive lock on a folder for this process: ``<folder>/.lock`` (see the module
    docstring). Not reentrant: a second :meth:`acquire` of the same folder, even in this
    process, is refused until :meth:`release`.

    Args:
        folder: an existing folder.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process's id into it.

        Raises:
            FolderInUse: another live process holds it (its pid in the error).
            OSError: the lock file cannot be created, or its file system has no locks.
        """
        if self.held:
            return
        for _ in range(_LOCK_TRIES):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            if not _try_lock(fd, shared=False):
                os.close(fd)
                time.sleep(_LOCK_RETRY_S)
                continue
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            # The holder deleted the file (release) after we opened it: our lock is on a file
            # nobody else will open. Lock the file now at that name instead.
            _unlock(fd)
            os.close(fd)
        raise FolderInUse(self.path.parent, _read_pid(self.path))

    def release(self) -> None:
        """Let go of the lock (if held) and delete its file."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is not None:  # deleted while still locked: see the retry in acquire
            self.path.unlink(missing_ok=True)
        _unlock(fd)
        os.close(fd)
        if fcntl is None:  # Windows cannot delete an open file
            with contextlib.suppress(OSError):
                self.path.unlink()


def check_unlocked(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`FolderInUse` if a live process holds ``folder``'s lock; write nothing.

    A check before the work that takes long (loading data), so that a second run into a
    live folder stops at once; the lock itself is taken by :meth:`FolderLock.acquire`. The
    check holds a shared lock for a moment, which an ``acquire`` at that moment retries.
    A folder whose file system has no locks counts as free.
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return  # no lock file: nobody holds the folder
    try:
        if _try_lock(fd, shared=True):
            _unlock(fd)
            return
    except OSError:
        return
    finally:
        os.close(fd)
    raise FolderInUse(Path(folder), _read_pid(path))


def _try_lock(fd: int, shared: bool) -> bool:
    """Lock ``fd`` without waiting; False if another holder has it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        else:
            os.lseek(fd, _WINDOWS_LOCKED_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as err:
        if err.errno in _HELD:
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, _WINDOWS_LOCKED_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _read_pid(path: Path) -> int | None:
    """The process id written in the lock file ``path``, or None."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
