"""Large per-block arrays in memory mappings of their own, handed back to the system as soon as they are freed."""

from __future__ import annotations

import mmap

import numpy as np

MAPPED_MIN_BYTES = 4 * 1024 * 1024


def block_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)`` for a per-block buffer: from ``MAPPED_MIN_BYTES`` on, in an anonymous memory
    mapping of its own (zero-filled by the system, unmapped when the array and its views are gone).

    Why: CPU inference keeps freed heap memory for re-use (``engine/model/fast.py``), right for the model's
    activations, which recur every few milliseconds; but blocks of tens of MB read in one thread and freed in
    another fragmented the heap, and a map's peak memory crept up block after block.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < MAPPED_MIN_BYTES:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, size), dtype).reshape(shape)
