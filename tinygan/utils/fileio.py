"""Atomic file writes: a file is either the old one or the complete new one, never half.

A crash, a full disk or an exception half-way through writing a checkpoint, a sample grid
or a downloaded data set must not leave a truncated file behind under the final name, where
the next run would trust it. The recipe used here is the standard POSIX one:

1. write to a fresh temporary file in the *same directory* (so step 3 is a rename within
   one file system, which is atomic);
2. flush and ``fsync`` it, so its bytes are on disk before its name is;
3. ``os.replace`` it onto the final name (atomic: readers see the old file or the new one);
4. on any error, delete the temporary file and leave the old file untouched.

::

    with atomic_write("samples/step_1000.png") as f:
        image.save(f, format="PNG")
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block ends without error.

    The temporary file is named ``.<name>.<random>.tmp`` beside ``path``; it is created
    with the usual ``0o666 & ~umask`` permissions, so the final file gets the same
    permissions as one written with ``open(path, "wb")``. The parent directory must exist.

    Args:
        path: the final file name.

    Yields:
        A binary file object open for writing.

    Raises:
        Whatever the block raises, after removing the temporary file; ``path`` is then
        exactly as it was before (absent, or the old file).
    """
    path = Path(path)
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
        tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
