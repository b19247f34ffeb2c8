"""The engine's two exception types: user errors and cancellation."""


class EngineError(Exception):
    """A problem with the user's input or environment, with a message a GIS user understands.

    Every front end (dialog, Processing, command line) shows ``str(error)`` and no traceback.
    """


class CancelledError(Exception):
    """The user cancelled a long operation; no partial output was left behind."""
