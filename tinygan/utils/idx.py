"""IDX files, the format of MNIST and Fashion-MNIST: read and checked.

IDX (LeCun's format): 4 magic bytes ``00 00 <type code> <ndim>``, then ndim big-endian
uint32 sizes, then the values, big-endian, in C order.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

PathLike = str | os.PathLike[str]


class DatasetError(ValueError):
    """A data file or folder is missing, truncated, corrupt or not what it claims to be."""


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into an array in native byte order.

    Compression is detected from the first two bytes (the gzip magic ``1f 8b``), not from
    the file name. The header is checked (two zero bytes, a known type code, at least one
    dimension) and the file must hold exactly ``prod(shape) * itemsize`` bytes of data.

    Args:
        path: the ``.gz`` or uncompressed IDX file.

    Returns:
        An array with the shape and type the header declares (uint8 for MNIST).

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: broken gzip data, a bad magic number, or a length that does not
            match the declared dimensions (a truncated download, say).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # bad header or CRC, cut short, bad data
            raise DatasetError(f"{path}: broken gzip data ({e}); delete it, fetch it again") from e
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DatasetError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex(' ') or 'missing'}, "
            "expected 00 00 <type code> <number of dimensions>)"
        )
    ndim = raw[3]
    data_start = 4 + 4 * ndim
    if len(raw) < data_start:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} sizes)")
    shape = struct.unpack(f">{ndim}I", raw[4:data_start])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = data_start + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "too long"
        raise DatasetError(
            f"{path}: {problem}: its header declares shape {shape} of {dtype.name}, which "
            f"takes {expected} bytes, but it holds {len(raw)}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=data_start).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a writable copy in native byte order
