"""Hostile requests to a running bridge: the bridge's group of the hostile-input benchmark.

`hostile_service_cases(base_url, token)` sends each case once and returns, per case,
{"case": name, "status": the HTTP status (None when the bridge closed the connection instead),
"server_5xx": whether the bridge answered 5xx, "ok": whether the answer is one the case expects}.
Every case is refused or answered without a server error: oversized bodies (chunked or declared),
oversized heads, deep or malformed JSON, non-finite numbers in each numeric field, huge integers,
wrong types, path traversal, missing or wrong credentials, unknown ids. None of them starts a job.
Only the standard library: raw sockets, so that malformed requests go out exactly as written.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
from collections.abc import Iterable

UNKNOWN = "0123456789abcdef"
"""A well-formed id no job or head has."""
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e999")
"""JSON text Python's json reads as non-finite floats (1e999 overflows to inf)."""


def chunked_body(total: int, size: int = 1 << 16) -> Iterable[bytes]:
    """`total` bytes of body in chunked transfer coding, `size` bytes a chunk."""
    while total > 0:
        piece = min(size, total)
        total -= piece
        yield b"%x\r\n" % piece + b" " * piece + b"\r\n"
    yield b"0\r\n\r\n"


def _read_response(sock: socket.socket) -> tuple[int | None, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            piece = sock.recv(1 << 16)
            if not piece:
                break
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            piece = sock.recv(1 << 16)
            if not piece:
                break
            body += piece
    except OSError:  # reset: the bridge closed on a request it would not read
        head, _, body = data.partition(b"\r\n\r\n")
    status = re.match(rb"HTTP/1\.[01] (\d{3}) ", head)
    return (int(status.group(1)) if status else None), body


def exchange(base_url: str, pieces: Iterable[bytes] | bytes, timeout_s: float = 60.0) -> tuple[int | None, bytes]:
    """(status, body) of one request sent as raw bytes, in pieces; status None when the bridge
    closed the connection without an answer."""
    parts = urllib.parse.urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout_s) as sock:
        try:
            for piece in [pieces] if isinstance(pieces, bytes) else pieces:
                sock.sendall(piece)
        except OSError:  # the bridge may stop reading once it has refused the request
            pass
        return _read_response(sock)


def _names_field(body: bytes, field: str) -> bool:
    """Whether a 422 answer's validation error points at `field`."""
    try:
        detail = json.loads(body)["detail"]
        return any(field in [str(part) for part in error["loc"]] for error in detail)
    except (ValueError, KeyError, TypeError):
        return False


def _cases(host: str, token: str) -> list[tuple[str, Iterable[bytes] | bytes, set[int], bool, str | None]]:
    """(name, request, statuses that are right, whether a closed connection is right too, field the 422 names)."""

    def request(
        method: str, path: str, body: bytes | None = None, headers: dict | None = None, with_host: bool = True, with_token: bool = True
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1"]
        if with_host:
            lines.append(f"Host: {host}")
        if with_token:
            lines.append(f"Authorization: Bearer {token}")
        sent = dict(headers or {})
        if body is not None:
            sent.setdefault("Content-Type", "application/json")
            sent.setdefault("Content-Length", str(len(body)))
        lines += [f"{k}: {v}" for k, v in sent.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def chunked(path: str, total: int) -> Iterable[bytes]:
        yield request("POST", path, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        yield from chunked_body(total)

    edit = '{"head": "%s", "steps": [{"module": "m", "strength": %%s}]}' % UNKNOWN
    numeric = [  # (label, path, body template, the field a 422 names)
        ("head_seed", "/v1/heads", '{"seed": %s}', "seed"),
        ("head_latent_w", "/v1/heads", '{"latent": [0.5, %s]}', "latent"),
        ("head_latent_ws", "/v1/heads", '{"latent": [[%s]]}', "latent"),
        ("head_param", "/v1/heads", '{"seed": 1, "params": {"eye_colour": %s}}', "params"),
        ("edit_strength", "/v1/jobs/edit", edit, "strength"),
        ("edit_preview_yaw", "/v1/jobs/edit", '{"head": "%s", "steps": [], "preview_yaw": %%s}' % UNKNOWN, "preview_yaw"),
        ("edit_grid", "/v1/jobs/edit", '{"head": "%s", "steps": [], "grid": %%s}' % UNKNOWN, "grid"),
        ("train_minutes", "/v1/jobs/train", '{"edit": "red hair", "mask": "hair", "minutes": %s}', "minutes"),
        ("train_seed", "/v1/jobs/train", '{"edit": "red hair", "mask": "hair", "seed": %s}', "seed"),
        ("train_steps", "/v1/jobs/train", '{"edit": "red hair", "mask": "hair", "steps": %s}', "steps"),
    ]
    cases = [
        (f"{label}_{spelling}", request("POST", path, (template % spelling).encode()), {422}, False, field)
        for label, path, template, field in numeric
        for spelling in NON_FINITE
    ]

    deep = b'{"latent": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    cases += [
        ("chunked_body_8mib", chunked("/v1/heads", 8 << 20), {413}, False, None),
        ("chunked_body_just_over_1mib", chunked("/v1/heads", (1 << 20) + 1), {413}, False, None),
        ("content_length_1tb_no_body", request("POST", "/v1/heads", headers={"Content-Length": str(10**12)}), {413}, False, None),
        ("content_length_negative", request("POST", "/v1/heads", headers={"Content-Length": "-1"}), {400}, True, None),
        (
            "content_length_and_chunked",
            request("POST", "/v1/heads", headers={"Content-Length": "5", "Transfer-Encoding": "chunked"}) + b"5\r\n{}   \r\n0\r\n\r\n",
            {400, 422},
            True,
            None,
        ),
        ("header_line_100kb", request("GET", "/v1/info", headers={"X-Pad": "a" * 100_000}), {400, 431}, True, None),
        (
            "header_streamed_100kb",
            [request("GET", "/v1/info")[:-2]] + [b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 100 + [b"\r\n"],
            {400, 431},
            True,
            None,
        ),
        ("many_headers_2000", request("GET", "/v1/info", headers={f"X-{i}": "a" for i in range(2000)}), {400, 431}, True, None),
        ("url_100kb", request("GET", "/v1/jobs/" + "a" * 100_000), {400, 414, 431}, True, None),
        ("deep_json_100k", request("POST", "/v1/heads", deep), {400, 422}, False, None),
        ("integer_5000_digits", request("POST", "/v1/heads", b'{"seed": ' + b"9" * 5000 + b"}"), {400, 422}, False, None),
        ("integer_2_pow_64", request("POST", "/v1/heads", b'{"seed": 18446744073709551616}'), {422}, False, "seed"),
        ("integer_400_digits_as_float", request("POST", "/v1/jobs/edit", (edit % ("1" + "0" * 400)).encode()), {422}, False, "strength"),
        ("wrong_type_seed", request("POST", "/v1/heads", b'{"seed": "three"}'), {422}, False, "seed"),
        (
            "wrong_type_steps",
            request("POST", "/v1/jobs/edit", b'{"head": "%s", "steps": {"a": 1}}' % UNKNOWN.encode()),
            {422},
            False,
            "steps",
        ),
        ("body_is_a_list", request("POST", "/v1/heads", b"[1, 2, 3]"), {422}, False, None),
        ("extra_field", request("POST", "/v1/heads", b'{"seed": 1, "evil": true}'), {422}, False, "evil"),
        ("malformed_json", request("POST", "/v1/heads", b'{"seed": '), {422}, False, None),
        ("non_utf8_body", request("POST", "/v1/jobs/train", b'{"edit": "\xff\xfe", "mask": "hair"}'), {400, 422}, False, None),
        ("lone_surrogate_prompt", request("POST", "/v1/jobs/train", b'{"edit": "\\ud800", "mask": "hair"}'), {422}, False, "edit"),
        (
            "prompt_10kb",
            request("POST", "/v1/jobs/train", json.dumps({"edit": "x" * 10_000, "mask": "hair"}).encode()),
            {422},
            False,
            "edit",
        ),
        (
            "instruction_10kb",
            request("POST", "/v1/instructions", json.dumps({"instruction": "x" * 10_000}).encode()),
            {422},
            False,
            "instruction",
        ),
        ("result_name_traversal", request("GET", f"/v1/jobs/{UNKNOWN}/results/..%2F..%2F..%2Fconfig%2Ftoken"), {404}, False, None),
        ("path_dot_segments", request("GET", "/v1/jobs/../../../../etc/passwd"), {404}, False, None),
        ("job_id_traversal", request("GET", "/v1/jobs/..%2F..%2Ftoken"), {404, 422}, False, None),
        ("result_name_nul", request("GET", f"/v1/jobs/{UNKNOWN}/results/field.npz%00.png"), {404}, False, None),
        ("wrong_token", request("GET", "/v1/info", with_token=False, headers={"Authorization": "Bearer " + "x" * 43}), {401}, False, None),
        ("missing_token", request("GET", "/v1/info", with_token=False), {401}, False, None),
        ("token_in_query", request("GET", f"/v1/info?token={token}", with_token=False), {401}, False, None),
        ("non_ascii_token", request("GET", "/v1/info", with_token=False, headers={"Authorization": "Bearer \xff\xfe"}), {401}, False, None),
        ("bad_host", request("GET", "/v1/info", with_host=False, headers={"Host": "attacker.example"}), {403}, False, None),
        ("missing_host", request("GET", "/v1/info", with_host=False), {400}, True, None),
        ("bad_origin", request("GET", "/v1/info", headers={"Origin": "http://attacker.example"}), {403}, False, None),
        ("null_origin", request("GET", "/v1/info", headers={"Origin": "null"}), {403}, False, None),
        ("unknown_job", request("GET", f"/v1/jobs/{UNKNOWN}"), {404}, False, None),
        ("unknown_job_cancel", request("POST", f"/v1/jobs/{UNKNOWN}/cancel"), {404}, False, None),
        ("unknown_job_delete", request("DELETE", f"/v1/jobs/{UNKNOWN}"), {404}, False, None),
        ("unknown_head_edit", request("POST", "/v1/jobs/edit", b'{"head": "%s", "steps": []}' % UNKNOWN.encode()), {404}, False, None),
        ("malformed_job_id", request("GET", "/v1/jobs/not-an-id"), {422}, False, None),
        ("method_not_allowed", request("PUT", "/v1/jobs", b"{}"), {405}, False, None),
        ("docs_page", request("GET", "/v1/docs"), {404}, False, None),
        ("tls_hello_on_http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, {400}, True, None),
        (
            "websocket_upgrade",
            request(
                "GET",
                "/v1/health",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                },
            ),
            {200},
            False,
            None,
        ),
        ("still_answering", request("GET", "/v1/health"), {200}, False, None),
    ]
    return cases


def hostile_service_cases(base_url: str, token: str, timeout_s: float = 60.0) -> list[dict]:
    """Send every case to the bridge at `base_url`; one {"case", "status", "server_5xx", "ok"} each."""
    out = []
    for name, pieces, expected, closed_ok, field in _cases(urllib.parse.urlsplit(base_url).netloc, token):
        status, body = exchange(base_url, pieces, timeout_s)
        ok = status in expected or (status is None and closed_ok)
        if ok and status == 422 and field is not None:
            ok = _names_field(body, field)
        out.append({"case": name, "status": status, "server_5xx": status is not None and status >= 500, "ok": ok})
    return out
