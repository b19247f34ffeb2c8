"""Per-block buffers: large ones in memory mappings of their own, small ones on the heap, all zero-filled."""

from __future__ import annotations

import mmap

import numpy as np

from engine.data.buffers import MAPPED_MIN_BYTES, block_zeros


def _owner(array: np.ndarray):
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_large_buffers_are_mapped_zeroed_and_writable():
    shape = (3, 4, 300, 300)  # 4.3 MB of float32
    assert np.prod(shape) * 4 >= MAPPED_MIN_BYTES
    x = block_zeros(shape, np.float32)
    assert x.shape == shape and x.dtype == np.float32 and not x.any()
    assert isinstance(_owner(x), mmap.mmap)
    x[1, 2, 3, 4] = 5.0
    assert x.sum() == 5.0


def test_small_buffers_stay_on_the_heap():
    valid = block_zeros((3, 10, 10), bool)
    assert valid.dtype == bool and valid.shape == (3, 10, 10) and not valid.any()
    assert not isinstance(_owner(valid), mmap.mmap)
