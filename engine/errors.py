"""The engine's two exception types: user errors and cancellation."""

from __future__ import annotations


class EngineError(Exception):
    """A problem with the user's input or environment, with a message a GIS user understands.

    Every front end (dialog, Processing, command line) shows ``str(error)`` and no traceback.
    """


class CancelledError(Exception):
    """The user cancelled a long operation; no partial output was left behind.

    ``kept`` lists files deliberately kept (a training checkpoint to resume from); front ends name them.
    """

    def __init__(self, message: str = "Cancelled.", kept: "list[str] | tuple[str, ...]" = ()) -> None:
        super().__init__(message)
        self.kept = list(kept)


def cancelled_message(error: BaseException, interrupted: str = "Cancelled") -> str:
    """What a front end tells the user after cancelling: nothing was written, or which file was kept and why."""
    kept = getattr(error, "kept", None)
    if kept:
        return (f"{interrupted}: no output was written; the training checkpoint {', '.join(repr(k) for k in kept)} "
                "is kept so that running again with resume continues from its last completed epoch.")
    return f"{interrupted}: nothing was written."


def release_frames(error: BaseException) -> None:
    """Clears the local variables of the finished frames in ``error``'s traceback (and of its context chain).

    An error kept for its message would otherwise keep open GDAL datasets, layers and features alive until a later
    garbage collection, which may free them after their dataset (heap corruption) and keeps the files open.
    """
    import traceback

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__
