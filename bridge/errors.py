"""Errors a user can cause. Their message is one sentence that says what to do; the command line
and the server show it as it is, never with a traceback."""


class BridgeError(Exception):
    """A problem the user can fix (a missing or corrupt file, a bad argument)."""


class WeightsError(BridgeError):
    """Weights that are missing, unreadable, or made for another model."""
