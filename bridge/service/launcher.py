"""Start and stop a bridge process from Python (the demo, the benchmark, the tests, the add-on)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import BridgeError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalBridge:
    """`python -m bridge serve` on a free loopback port; `config`/`cache` folders default to the user's."""

    def __init__(
        self,
        config: Path | None = None,
        cache: Path | None = None,
        port: int | None = None,
        threads: int = 0,
        log: Path | None = None,
        python: str = sys.executable,
        generator: Path | None = None,
    ):
        # absolute: the bridge runs in a neutral working folder (see start)
        self.config = None if config is None else Path(config).resolve()
        self.cache = None if cache is None else Path(cache).resolve()
        self.port = port or free_port()
        self.threads, self.python = threads, python
        self.log = None if log is None else Path(log).resolve()
        self.generator = None if generator is None else Path(generator).resolve()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config is not None:
            env["TEXT_EDIT_CONFIG_DIR"] = str(self.config)
        if self.cache is not None:
            env["TEXT_EDIT_CACHE_DIR"] = str(self.cache)
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def start(self, timeout_s: float = 120.0) -> "LocalBridge":
        command = [self.python, "-m", "bridge", "serve", "--port", str(self.port)]
        if self.threads:
            command += ["--threads", str(self.threads)]
        if self.generator is not None:
            command += ["--generator", str(self.generator)]
        output = subprocess.DEVNULL
        if self.log:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            output = self.log.open("ab")
        # A neutral working folder: a `bridge` folder beside the caller (the add-on's own copy of the
        # client, inside the Blender extension) must not shadow the installed bridge.
        self.process = subprocess.Popen(command, cwd=tempfile.gettempdir(), env=self.environment(), stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                where = f"; see {self.log}" if self.log else ""
                raise BridgeError(f"The bridge exited while starting (status {self.process.returncode}){where}.")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise BridgeError(f"The bridge did not answer within {timeout_s:g} s of starting.")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalBridge":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
