"""Downloads from a list of mirrors, checked against an MD5, written atomically."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tinygan.utils.fileio import atomic_write
from tinygan.utils.idx import DatasetError, PathLike


class DownloadError(DatasetError):
    """Every mirror failed to deliver a file with the expected checksum."""


# --------------------------------------------------------------------------- downloads
def download(urls: Sequence[str], dest: PathLike, md5: str, timeout: float = 10.0) -> Path:
    """Download a file from the first mirror that delivers it with the right MD5.

    Each URL is tried in turn; a mirror that cannot be reached, answers with an HTTP error,
    stalls for ``timeout`` seconds or sends bytes with another checksum is skipped. The
    bytes go to a temporary file beside ``dest`` that replaces ``dest`` only once verified,
    so a failed or interrupted download never leaves a file behind.

    Args:
        urls: the mirrors' URLs for this file, tried in order.
        dest: where the file goes; missing parent folders are created.
        md5: the expected MD5 hex digest.
        timeout: seconds to wait for a connection or for the next bytes.

    Returns:
        ``dest`` as a Path.

    Raises:
        DownloadError: the folder cannot be written, or every mirror failed; the message
            names each mirror and what went wrong there.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot download {dest.name}: cannot create {dest.parent}: {e}") from e
    if not os.access(dest.parent, os.W_OK):
        raise DownloadError(f"cannot download {dest.name}: {dest.parent} is not writable")
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(dest) as f:
                digest = hashlib.md5(usedforsecurity=False)  # a checksum, not security
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    f.write(chunk)
                if digest.hexdigest() != md5.lower():
                    raise DownloadError(f"MD5 {digest.hexdigest()}, expected {md5}")
            return dest
        except (OSError, http.client.HTTPException, DownloadError) as e:  # includes timeouts
            reason = e.reason if type(e) is urllib.error.URLError else e  # drop "<urlopen error>"
            failures.append(f"{url} ({reason})")
    raise DownloadError(f"could not download {dest.name} from " + ", nor from ".join(failures))


# --------------------------------------------------------------------------- data folders
def user_cache_dir() -> Path:
    """tinygan's per-user cache: ``$XDG_CACHE_HOME/tinygan``, else ``~/.cache/tinygan``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG: ignore relative
    return base / "tinygan"
