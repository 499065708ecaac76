"""Atomic file writes: a file is either the old one or the complete new one, never half.

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
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

STALE_AFTER_S = 600.0  # a temporary file unmodified this long was left by a killed writer


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
