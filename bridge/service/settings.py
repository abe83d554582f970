"""Where the bridge keeps its token and its work, and the limits of its API."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import BridgeError

APP_FOLDER = "text-edit-bridge"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Limits:
    edit_prompt_chars: int = 300
    mask_prompt_chars: int = 100
    grid_min: int = 64
    grid_max: int = 512
    request_bytes: int = 1 << 20
    """A request body, however it is sent (Content-Length or chunked)."""
    request_head_bytes: int = 16 << 10
    """The request line and headers together: a longer head is refused (431, or 400 and the
    connection closed when it is still arriving)."""
    request_timeout_s: float = 15.0
    """A request's head and body must have arrived this long after the connection began waiting
    for it, or the connection is closed (TEXT_EDIT_REQUEST_TIMEOUT_S overrides)."""
    keep_alive_s: int = 5
    """A connection idle between requests is closed after this long."""
    connections: int = 64
    """Connections and requests served at once; past them the answer is 503 (try again later)."""
    queued_jobs: int = 16
    stack_steps: int = 8
    training_steps: int = 20_000
    training_minutes: float = 240.0
    result_days: float = 7.0
    """Finished jobs (and their result files) are deleted this long after they finished."""


LIMITS = Limits()


def request_timeout_s() -> float:
    """LIMITS.request_timeout_s, or TEXT_EDIT_REQUEST_TIMEOUT_S when set (the tests use a short one)."""
    override = os.environ.get("TEXT_EDIT_REQUEST_TIMEOUT_S")
    if not override:
        return LIMITS.request_timeout_s
    try:
        seconds = float(override)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise BridgeError(f"TEXT_EDIT_REQUEST_TIMEOUT_S must be a number of seconds between 0 and 3600, not {override!r}.")
    return seconds


def _platform_base(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA" if kind == "cache" else "APPDATA", home / "AppData" / "Roaming"))
    if sys.platform == "darwin":
        return home / "Library" / ("Caches" if kind == "cache" else "Application Support")
    variable, default = ("XDG_CACHE_HOME", home / ".cache") if kind == "cache" else ("XDG_CONFIG_HOME", home / ".config")
    return Path(os.environ.get(variable) or default)


def config_dir() -> Path:
    """The token lives here (TEXT_EDIT_CONFIG_DIR overrides)."""
    override = os.environ.get("TEXT_EDIT_CONFIG_DIR")
    return Path(override) if override else _platform_base("config") / APP_FOLDER


def cache_dir() -> Path:
    """Heads, jobs, results and trained modules live here (TEXT_EDIT_CACHE_DIR overrides)."""
    override = os.environ.get("TEXT_EDIT_CACHE_DIR")
    return Path(override) if override else _platform_base("cache") / APP_FOLDER
