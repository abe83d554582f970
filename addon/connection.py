"""Reaching the bridge from Blender: the client made from the preferences, the online-access rule,
and a bridge process the add-on starts itself when the artist gave it a Python to start it with.

No bpy here: the operators pass the preference values in as a BridgeSettings."""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..bridge.errors import BridgeError
from ..bridge.service.client import BridgeClient, checked_url
from ..bridge.service.launcher import LocalBridge
from ..bridge.service.security import read_token
from ..bridge.service.settings import DEFAULT_HOST, DEFAULT_PORT, LOOPBACK_HOSTS, config_dir

DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


@dataclass(frozen=True)
class BridgeSettings:
    url: str = DEFAULT_URL
    token: str = ""
    """Pasted token; empty reads the token file of a bridge on this computer."""
    token_folder: str = ""
    """The bridge's config folder; empty is the platform default (TEXT_EDIT_CONFIG_DIR overrides)."""
    bridge_python: str = ""
    """A Python that has the bridge installed; when set, a bridge is started if none answers."""
    request_timeout_s: float = 30.0
    job_timeout_s: float = 3600.0
    log_file: str = ""
    """Where a bridge started by the add-on writes its output."""


def is_loopback(url: str) -> bool:
    try:
        return (urllib.parse.urlsplit(url).hostname or "") in LOOPBACK_HOSTS
    except ValueError:  # not an address at all ("http://[::1"); check_url says so
        return False


def check_url(url: str, online_access: bool) -> None:
    """A bridge on this computer is always allowed; another computer needs Blender's online access."""
    try:
        checked_url(url)
    except BridgeError:
        raise BridgeError(
            f"The bridge URL {url[:100]!r} is not an http address like {DEFAULT_URL}; fix it in the add-on preferences."
        ) from None
    if not is_loopback(url) and not online_access:
        raise BridgeError(
            "The bridge URL names another computer but Blender's online access is off; "
            "allow it in Preferences > System > Network, or use a bridge on this computer."
        )


def make_client(settings: BridgeSettings, online_access: bool) -> BridgeClient:
    check_url(settings.url, online_access)
    token = settings.token.strip()
    if not token:
        if not is_loopback(settings.url):
            raise BridgeError("A bridge on another computer needs its token pasted into the add-on preferences.")
        token = read_token(Path(settings.token_folder) if settings.token_folder else config_dir())
    return BridgeClient(settings.url, token, timeout=settings.request_timeout_s)


class ManagedBridge:
    """The bridge process this add-on started (at most one); stopped when the add-on is disabled."""

    def __init__(self) -> None:
        self._bridge: LocalBridge | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._bridge is not None and self._bridge.process is not None and self._bridge.process.poll() is None

    def ensure(self, settings: BridgeSettings) -> bool:
        """Start a bridge for `settings.url` when none answers there; True when one was started."""
        if not settings.bridge_python or not is_loopback(settings.url):
            return False
        check_url(settings.url, online_access=False)
        with self._lock:
            if self.running:
                return False
            try:
                BridgeClient(settings.url, "-", timeout=2.0).health()
                return False
            except BridgeError:
                pass
            port = urllib.parse.urlsplit(settings.url).port or DEFAULT_PORT
            folder = Path(settings.token_folder) if settings.token_folder else None
            if not Path(settings.bridge_python).is_file():
                raise BridgeError(f"The bridge Python {settings.bridge_python} does not exist; fix it in the add-on preferences.")
            log = Path(settings.log_file) if settings.log_file else None
            self._bridge = LocalBridge(config=folder, port=port, python=settings.bridge_python, log=log).start()
            return True

    def stop(self) -> None:
        with self._lock:
            if self._bridge is not None:
                self._bridge.stop()
                self._bridge = None


MANAGED = ManagedBridge()
