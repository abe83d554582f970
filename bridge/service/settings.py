"""Where the bridge keeps its token and its work, and the limits of its API."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

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
    queued_jobs: int = 16
    stack_steps: int = 8
    training_steps: int = 20_000
    training_minutes: float = 240.0
    result_days: float = 7.0
    """Finished jobs (and their result files) are deleted this long after they finished."""


LIMITS = Limits()


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
