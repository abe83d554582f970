"""A real bridge process on a free loopback port, with its own config and cache folders."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from bridge.service.launcher import LocalBridge


class BridgeProcess(LocalBridge):
    def __init__(self, folder: Path):
        super().__init__(folder / "config", folder / "cache", threads=1, log=folder / "bridge.log")

    @property
    def token(self) -> str:
        return (self.config / "token").read_text().strip()

    def call(
        self, method: str, path: str, body=None, token: str | None = "default", headers: dict | None = None, raw_body: bytes | None = None
    ):
        """(status, parsed JSON or bytes) of one request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = dict(headers or {})
        if token == "default":
            token = self.token
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        kind = response.getheader("content-type", "")
        return response.status, (json.loads(payload) if kind.startswith("application/json") and payload else payload)

    def wait(self, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, job = self.call("GET", f"/v1/jobs/{job_id}")
            assert status == 200, job
            if job["state"] in states:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.fixture
def bridge(tmp_path):
    process = BridgeProcess(tmp_path)
    yield process
    process.stop()


@pytest.fixture
def identity_module(bridge):
    """An untrained (identity) edit module for the bundled prior in the bridge's own library."""
    from bridge.lenerf.edit_module import EditModule, EditSpec
    from bridge.prior.model import HeadPrior

    prior = HeadPrior.load()
    EditModule.untrained(EditSpec("green eyes", "eyes"), prior.generator, prior.sha256).save(bridge.cache / "modules" / "identity")
    return "identity"
