"""A small client for the bridge's HTTP API, on the standard library only (Blender's Python can
use it). Every failure is a BridgeError with one sentence to show the user."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import BridgeError
from .settings import DEFAULT_HOST, DEFAULT_PORT, config_dir

FINISHED = ("done", "failed", "cancelled")
DOWNLOAD_CHUNK_BYTES = 4 * 2**20


TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,512}")
"""What can follow "Bearer " in a header: visible ASCII, no whitespace (a pasted newline broke the request)."""


def checked_url(url: str) -> str:
    """The bridge's address as http://HOST:PORT (without a trailing slash), or one sentence."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- raises ValueError when out of range or not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise BridgeError(f"{url[:100]!r} is not a bridge address; give one like http://{DEFAULT_HOST}:{DEFAULT_PORT}.")
    return url.strip().rstrip("/")


class BridgeBusy(BridgeError):
    """429: the bridge's queue is full; try again when some jobs have finished."""


class BridgeClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.url = checked_url(url or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")
        if token is None:
            from .security import read_token

            token = read_token(config_dir())
        if not TOKEN_TEXT.fullmatch(token):
            raise BridgeError("The token must be the one line in the bridge's token file, without spaces or line breaks.")
        self.token = token
        self.timeout = timeout

    def _open(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        return urllib.request.urlopen(request, timeout=self.timeout)

    @contextlib.contextmanager
    def _answers(self):
        """Every way a request can fail, as one sentence."""
        try:
            yield
        except urllib.error.HTTPError as error:
            raise (BridgeBusy if error.code == 429 else BridgeError)(_detail(error)) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
            # HTTPException: the bridge went away mid-reply (IncompleteRead) or answered garbage
            reason = getattr(error, "reason", error)
            raise BridgeError(f"No answer from the bridge at {self.url} ({reason}); start it with `python -m bridge serve`.") from None

    def _request(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        with self._answers(), self._open(method, path, body) as response:
            payload = response.read()
        if raw:
            return payload
        try:
            return json.loads(payload) if payload else None
        except ValueError:
            raise BridgeError(f"The bridge at {self.url} answered something that is not JSON; is another program on that port?") from None

    def health(self) -> dict:
        return self._request("GET", "/v1/health")

    def info(self) -> dict:
        return self._request("GET", "/v1/info")

    def create_head(self, seed: int | None = None, params: dict | None = None, latent: list | None = None) -> dict:
        body = {k: v for k, v in {"seed": seed, "params": params, "latent": latent}.items() if v is not None}
        return self._request("POST", "/v1/heads", body)

    def create_head_from_picture(
        self, picture: bytes, crop: tuple[int, int, int] | None = None, yaw: float | None = None, pitch: float | None = None
    ) -> dict:
        """A head from a picture's file bytes (PNG or JPEG), the image encoder's answer alone."""
        return self._request("POST", "/v1/heads/from-picture", _picture_body(picture, crop, yaw, pitch))

    def submit_head(
        self,
        picture: bytes,
        refine: int = 30,
        crop: tuple[int, int, int] | None = None,
        yaw: float | None = None,
        pitch: float | None = None,
    ) -> dict:
        """A job making a head from a picture and refining it `refine` steps; its info holds the head."""
        return self._request("POST", "/v1/jobs/head", {**_picture_body(picture, crop, yaw, pitch), "refine": refine})

    def modules(self) -> list[dict]:
        return self._request("GET", "/v1/modules")["modules"]

    def submit_edit(
        self,
        head: str,
        steps: list[dict],
        grid: int = 128,
        preview_yaw: float = 20.0,
        sampling: str = "sparse",
        previews: bool = True,
        field: bool = True,
    ) -> dict:
        body = {"head": head, "steps": steps, "grid": grid, "preview_yaw": preview_yaw}
        if sampling != "sparse":  # older bridges know neither field: send them only when they differ
            body["sampling"] = sampling
        if not previews:
            body["previews"] = False
        if not field:
            body["field"] = False
        return self._request("POST", "/v1/jobs/edit", body)

    def parse_instruction(self, sentence: str) -> dict:
        """The (edit, mask) pair the bridge reads an instruction sentence as: {"edit", "mask", "part", ...}."""
        return self._request("POST", "/v1/instructions", {"instruction": sentence})

    def submit_training(self, edit: str, mask: str, **options) -> dict:
        return self._request("POST", "/v1/jobs/train", {"edit": edit, "mask": mask, **options})

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def jobs(self) -> list[dict]:
        return self._request("GET", "/v1/jobs")["jobs"]

    def cancel(self, job_id: str) -> dict:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}")

    def result(self, job_id: str, name: str) -> bytes:
        return self._request("GET", f"/v1/jobs/{job_id}/results/{name}", raw=True)

    def download(self, job_id: str, name: str, path: Path) -> Path:
        """Result `name` of a job streamed into `path` (whole or not at all): a 256^3 field is 151 MB."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            with self._answers(), self._open("GET", f"/v1/jobs/{job_id}/results/{name}") as response, partial.open("wb") as file:
                shutil.copyfileobj(response, file, DOWNLOAD_CHUNK_BYTES)
                if response.length:  # the body ended before its Content-Length
                    raise http.client.IncompleteRead(b"", response.length)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        return path

    def wait(
        self, job_id: str, on_progress: Callable[[dict], None] | None = None, poll_s: float = 0.5, timeout_s: float | None = None
    ) -> dict:
        """Poll until the job finishes; raises BridgeError if it failed or was cancelled."""
        started = time.monotonic()
        while True:
            job = self.job(job_id)
            if on_progress:
                on_progress(job)
            if job["state"] in FINISHED:
                break
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise BridgeError(f"Job {job_id} did not finish within {timeout_s:g} s; it is still {job['state']}.")
            time.sleep(poll_s)
        if job["state"] == "failed":
            raise BridgeError(f"The job failed: {job['error']}")
        if job["state"] == "cancelled":
            raise BridgeError("The job was cancelled.")
        return job


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read()).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    if isinstance(detail, list) and detail:  # FastAPI validation errors: name the field
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        detail = f"{where}: {first.get('msg', 'invalid')}" if where else first.get("msg", "invalid")
    return f"The bridge refused the request ({error.code}): {detail or error.reason}"


def _picture_body(picture: bytes, crop, yaw, pitch) -> dict:
    import base64

    body = {"picture": base64.b64encode(bytes(picture)).decode("ascii")}
    for name, value in (("crop", list(crop) if crop is not None else None), ("yaw", yaw), ("pitch", pitch)):
        if value is not None:
            body[name] = value
    return body
