"""Progress and cancellation callbacks shared by every long engine operation."""

from __future__ import annotations

from typing import Callable, Optional

from .errors import CancelledError

ProgressCallback = Callable[[float, str], None]
CancelledCallback = Callable[[], bool]


class Reporter:
    """Wraps the optional ``progress(fraction, message)`` and ``cancelled()`` callbacks.

    ``span(start, end)`` gives a child reporter that maps its own 0..1 onto ``start..end`` of the parent,
    so nested steps report one monotonic overall fraction.
    """

    def __init__(
        self,
        progress: Optional[ProgressCallback] = None,
        cancelled: Optional[CancelledCallback] = None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self._progress = progress
        self._cancelled = cancelled
        self._start = start
        self._end = end

    def report(self, fraction: float, message: str = "") -> None:
        """Reports ``fraction`` (0..1 of this span) and raises ``CancelledError`` if the user cancelled."""
        self.check()
        if self._progress is not None:
            fraction = min(max(fraction, 0.0), 1.0)
            self._progress(self._start + (self._end - self._start) * fraction, message)

    def check(self) -> None:
        """Raises ``CancelledError`` if the user asked to cancel."""
        if self._cancelled is not None and self._cancelled():
            raise CancelledError("Cancelled by the user.")

    def report_callback(self) -> ProgressCallback:
        """This span as a plain ``progress(fraction, message)`` callback for a nested engine function."""

        def callback(fraction: float, message: str = "") -> None:
            if self._progress is not None:
                fraction = min(max(fraction, 0.0), 1.0)
                self._progress(self._start + (self._end - self._start) * fraction, message)

        return callback

    def span(self, start: float, end: float) -> "Reporter":
        """A child reporter covering ``start..end`` (fractions of this reporter's range)."""
        width = self._end - self._start
        return Reporter(self._progress, self._cancelled, self._start + width * start, self._start + width * end)


def as_reporter(
    progress: Optional[ProgressCallback] = None, cancelled: Optional[CancelledCallback] = None
) -> Reporter:
    """Builds a ``Reporter`` from the two optional callbacks of the engine's public functions."""
    return Reporter(progress, cancelled)
