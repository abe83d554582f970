"""The bridge's log: what went wrong inside, with tracebacks, in a file beside its work that the
sentence a user sees names (the terminal, or the add-on's log file, gets the same lines)."""

from __future__ import annotations

import errno
import logging
import logging.handlers
import os
from pathlib import Path

LOG_NAME = "bridge.log"
LOG_BYTES = 2_000_000
"""The log is rotated at this size, keeping one older file."""

_log_file: Path | None = None
_handlers: list[logging.Handler] = []


def log_to_file(folder: Path) -> Path:
    """Send the bridge's log (its `bridge.*` loggers, INFO and up) to `folder`/bridge.log
    (owner-only) and to stderr, instead of wherever an earlier call sent it."""
    global _log_file
    close_log()
    path = Path(folder) / LOG_NAME
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    logger = logging.getLogger("bridge")
    for handler in (logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=1), logging.StreamHandler()):
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        _handlers.append(handler)
    logger.setLevel(logging.INFO)
    _log_file = path
    return path


def close_log() -> None:
    global _log_file
    logger = logging.getLogger("bridge")
    while _handlers:
        handler = _handlers.pop()
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.NOTSET)
    _log_file = None


def internal_error(error: BaseException) -> str:
    """The one sentence for a bug: what it was, and where its traceback was written."""
    what = str(error).splitlines()[0][:200] if str(error) else ""
    where = f"the traceback is in {_log_file}" if _log_file else "the traceback is in the bridge's output"
    return f"Internal error ({type(error).__name__}{': ' + what if what else ''}); {where}. Please report it."


def resource_problem(error: BaseException, folder: Path) -> str | None:
    """The sentence for running out of memory or of disk space (writing into `folder`), else None."""
    if isinstance(error, MemoryError):
        return "The bridge ran out of memory for this job; try a smaller grid or texture, or close other programs."
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"The disk holding {folder} is full; free some space (finished jobs can be deleted) and run the job again."
    return None
