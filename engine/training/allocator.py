"""glibc malloc settings for the duration of training: keep freed activation buffers instead of unmapping them.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and returns it
with ``munmap`` when freed, so each of the hundreds of large autograd buffers of a training step is page-faulted in
again on every step. Measured on this project's 2-core CPU: ~15-20 % of a ``lite`` fine-tuning step
(docs/BENCHMARKS_training.md). With mmap off and trimming deferred, the heap keeps the step's buffers and re-uses
them; ``malloc_trim`` hands the memory back when training ends. Nothing is done where libc is not glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
from typing import Iterator, Optional

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
GLIBC_DEFAULT_MMAP_MAX = 65536
# what engine.model.fast._keep_freed_memory sets for inference (glibc's own default is 128 KiB)
INFERENCE_TRIM_THRESHOLD = 1024 * 1024 * 1024
KEEP_ALL = 2**31 - 1  # the largest value mallopt takes

_lock = threading.Lock()
_depth = 0


@functools.lru_cache(maxsize=None)
def _libc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - raises AttributeError where it does not exist
        libc.malloc_trim
        return libc
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def training_allocator() -> Iterator[bool]:
    """Within the block, large buffers come from the heap and freed memory is kept (nested blocks are fine).

    Yields whether the settings apply (glibc). On leaving the outermost block glibc's mmap use is restored and
    the kept memory is returned to the system (``malloc_trim``).
    """
    global _depth
    libc = _libc()
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEEP_ALL)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, GLIBC_DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, INFERENCE_TRIM_THRESHOLD)
                libc.malloc_trim(0)
