"""The ASGI middleware in front of every route: who may call, and what a request body may hold.

In order: the request line and headers may not pass LIMITS.request_head_bytes (431; h11, set up
in server.py, only bounds a head still arriving); the Host header must name this bridge and no
Origin header may come (see security.py); every path but /v1/health needs the token; the body may
not pass LIMITS.request_bytes however it is sent (a Content-Length over it is refused at once, a
chunked body as soon as the bytes counted so far pass it, so no more than the limit is ever held);
a JSON body may hold only finite numbers and valid Unicode text: NaN, Infinity, 1e999 (which
Python's json reads as inf) and lone surrogates (\\ud800) are answered 422 naming the field,
before any route sees them.
"""

from __future__ import annotations

import json
import math

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from bridge.service import security
from bridge.service.settings import LIMITS


class AsciiJSONResponse(JSONResponse):
    """JSON that always encodes: ASCII only (a lone surrogate becomes an escape, never an error)."""

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def error(status: int, detail) -> AsciiJSONResponse:
    return AsciiJSONResponse({"detail": detail}, status_code=status)


_NOT_FINITE = object()


def _number(text: str):
    value = float(text)
    return value if math.isfinite(value) else _NOT_FINITE


def _unicode(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def body_problem(body: bytes) -> dict | None:
    """A validation error (FastAPI's shape) for the first value of a JSON body that is not a finite
    number or not valid Unicode text; None when all are, or when the body is not JSON at all (the
    route then says what is wrong with it)."""
    try:
        value = json.loads(body, parse_constant=lambda _: _NOT_FINITE, parse_float=_number)
    except (ValueError, RecursionError):
        return None
    stack = [((), value)]
    while stack:  # iterative: a body may nest as deep as json.loads allows
        path, item = stack.pop()
        if item is _NOT_FINITE:
            return {"type": "finite_number", "loc": ["body", *path], "msg": "Input should be a finite number"}
        if isinstance(item, str) and not _unicode(item):
            return {"type": "string_unicode", "loc": ["body", *path], "msg": "Input should be valid Unicode text"}
        if isinstance(item, dict):
            for key in item:
                if not _unicode(key):
                    return {"type": "string_unicode", "loc": ["body", *path, key], "msg": "Keys should be valid Unicode text"}
            stack.extend(((*path, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in reversed(list(enumerate(item))))
    return None


class Guard:
    def __init__(
        self, app, token: str, hosts: frozenset[str], limit: int = LIMITS.request_bytes, head_limit: int = LIMITS.request_head_bytes
    ):
        self.app, self.token, self.hosts, self.limit, self.head_limit = app, token, hosts, limit, head_limit

    def refusal(self, scope) -> AsciiJSONResponse | None:
        head = len(scope.get("raw_path") or b"") + len(scope["query_string"]) + sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > self.head_limit:
            return error(431, f"Request headers over {self.head_limit} bytes; send fewer or shorter ones.")
        headers = Headers(scope=scope)
        if headers.get("host", "").lower() not in self.hosts:
            return error(403, "Refused: the Host header does not name this bridge (only local clients may use it).")
        if "origin" in headers:
            return error(403, "Refused: requests from web pages (with an Origin header) may not drive the bridge.")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return self.too_large()
        if scope["path"] != "/v1/health" and not security.token_matches(self.token, headers.get("authorization")):
            return error(
                401, "Missing or wrong token: send 'Authorization: Bearer <token>' with the token from the bridge's config folder."
            )
        return None

    def too_large(self) -> AsciiJSONResponse:
        return error(413, f"Request body over {self.limit} bytes; send less.")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is not None:
            return await refusal(scope, receive, send)
        body = bytearray()
        while True:  # the whole body, counted as it streams in (chunked bodies have no Content-Length)
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left (or was cut off for being slow): nobody to answer
            chunk = message.get("body", b"")
            if len(body) + len(chunk) > self.limit:
                return await self.too_large()(scope, receive, send)
            body += chunk
            if not message.get("more_body", False):
                break
        problem = body_problem(bytes(body)) if body else None
        if problem is not None:
            return await error(422, [problem])(scope, receive, send)

        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
