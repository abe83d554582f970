"""Hostile clients against a real bridge on loopback (see conftest.py): oversized chunked bodies and
heads, non-finite numbers, slow clients; the bridge refuses each in one answer and keeps serving."""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import time

import pytest

from benchmarks.hostile_service import chunked_body, exchange, hostile_service_cases


def _head(bridge, extra: str = "") -> bytes:
    return (f"Host: 127.0.0.1:{bridge.port}\r\nAuthorization: Bearer {bridge.token}\r\n{extra}").encode()


def _chunked_post(bridge, path: str, pieces) -> list[bytes]:
    start = f"POST {path} HTTP/1.1\r\n".encode() + _head(bridge, "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    return [start, *pieces]


def _log(bridge) -> str:
    return bridge.log.read_text(errors="replace")


def test_chunked_body_over_the_limit_is_refused_and_the_bridge_keeps_serving(bridge):
    bridge.start()
    status, body = exchange(bridge.url, _chunked_post(bridge, "/v1/heads", chunked_body(2 << 20)))
    assert status == 413 and "bytes" in json.loads(body)["detail"]
    assert bridge.call("GET", "/v1/health")[0] == 200
    data = b'{"seed": 3}'  # a small chunked body is read as any other
    status, body = exchange(bridge.url, _chunked_post(bridge, "/v1/heads", [b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)]))
    assert status == 201 and json.loads(body)["seed"] == 3
    assert "Traceback" not in _log(bridge)


NUMERIC = [  # path, body with %s for the number, the field
    ("/v1/heads", '{"seed": %s}', "seed"),
    ("/v1/heads", '{"latent": [0.5, %s]}', "latent"),
    ("/v1/heads", '{"latent": [[0.5], [%s]]}', "latent"),
    ("/v1/jobs/edit", '{"head": "0123456789abcdef", "steps": [{"module": "m", "strength": %s}]}', "strength"),
    ("/v1/jobs/edit", '{"head": "0123456789abcdef", "steps": [], "preview_yaw": %s}', "preview_yaw"),
    ("/v1/jobs/train", '{"edit": "red hair", "mask": "hair", "minutes": %s}', "minutes"),
    ("/v1/jobs/train", '{"edit": "red hair", "mask": "hair", "seed": %s}', "seed"),
]


def test_non_finite_numbers_are_refused_naming_the_field(bridge):
    bridge.start()
    for path, template, field in NUMERIC:
        for number in ("NaN", "Infinity", "-Infinity", "1e999"):
            status, body = bridge.call("POST", path, raw_body=(template % number).encode())
            assert status == 422, (path, template, number, status, body)
            assert field in body["detail"][0]["loc"] and "finite" in body["detail"][0]["msg"], body
    status, body = bridge.call("POST", "/v1/jobs/train", raw_body=b'{"edit": "\\ud800 hair", "mask": "hair"}')
    assert status == 422 and body["detail"][0]["loc"] == ["body", "edit"]
    for path, template, field in NUMERIC:  # a JSON boolean is not a number (it was read as 1)
        status, body = bridge.call("POST", path, raw_body=(template % "true").encode())
        assert status == 422 and field in body["detail"][0]["loc"], (path, template, status, body)
    status, body = bridge.call("POST", "/v1/heads", {"seed": 1, "params": {"hair_length": True}})
    assert status == 422 and "params" in body["detail"][0]["loc"], body
    status, body = bridge.call("POST", "/v1/heads", {"seed": 1, "params": {"x" * 10000: 1}})
    assert status == 400 and len(body["detail"]) < 600 and "Unknown head parameter" in body["detail"], body
    status, body = bridge.call("POST", "/v1/heads", {"seed": 1, "params": {"hair_length": "long" * 2000}})
    assert status == 400 and body["detail"].startswith("hair_length is a number in [0.0, 1.0], not 'longlong") and len(body["detail"]) < 200
    status, body = bridge.call("POST", "/v1/heads", raw_body=b"[" * 200_000 + b"]" * 200_000)
    assert status == 422 and "nested too deep" in body["detail"], body
    status, body = bridge.call("POST", "/v1/jobs/edit", {"head": "0123456789abcdef", "steps": [], "grid": 512, "sampling": "dense"})
    assert status == 422 and "dense sampling" in body["detail"][0]["msg"], body
    status, body = bridge.call("POST", "/v1/heads", {"seed": -1})  # ordinary errors do not echo the value either
    assert status == 422 and body["detail"][0]["loc"] == ["body", "seed"] and "input" not in body["detail"][0]
    assert bridge.call("GET", "/v1/jobs")[1]["jobs"] == []
    log = _log(bridge)
    assert "Traceback" not in log and "Exception in ASGI" not in log


def test_docs_pages_are_gone_and_the_schema_needs_the_token(bridge):
    bridge.start()
    for path in ("/v1/docs", "/v1/redoc", "/docs", "/v1/docs/oauth2-redirect"):
        assert bridge.call("GET", path)[0] == 404, path
    assert bridge.call("GET", "/v1/openapi.json", token=None)[0] == 401
    assert bridge.call("GET", "/v1/openapi.json")[0] == 200


def test_oversized_request_heads_are_refused(bridge):
    bridge.start()
    line = b"GET /v1/info HTTP/1.1\r\n" + _head(bridge)
    status, body = exchange(bridge.url, line + b"X-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
    assert status == 431 and "headers" in json.loads(body)["detail"]
    # sent a line at a time, h11 stops reading past the limit: 400 and the connection closed (or,
    # when a busy machine lets the lines pile up before the server reads them, 431 as above)
    status, _ = exchange(bridge.url, [line] + [b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 100 + [b"\r\n"])
    assert status in (400, 431, None)
    status, _ = exchange(bridge.url, b"GET /v1/jobs/" + b"a" * 100_000 + b" HTTP/1.1\r\n" + _head(bridge) + b"\r\n")
    assert status in (400, 431)
    assert bridge.call("GET", "/v1/health")[0] == 200


def _seconds_until_closed(sock: socket.socket, trickle: bytes, limit_s: float) -> float:
    """Send `trickle` a byte every 0.1 s; seconds until the bridge closes the connection."""
    started = time.monotonic()
    for byte in trickle:
        if time.monotonic() - started > limit_s:
            break
        try:
            if select.select([sock], [], [], 0)[0] and not sock.recv(1024):
                return time.monotonic() - started
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the bridge kept a slow client for over {limit_s} s")


def test_slow_clients_are_cut_off(bridge, monkeypatch):
    monkeypatch.setenv("TEXT_EDIT_REQUEST_TIMEOUT_S", "1")
    bridge.start()
    with socket.create_connection(("127.0.0.1", bridge.port)) as sock:  # headers a byte at a time
        sock.sendall(b"GET /v1/info HTTP/1.1\r\n")
        assert _seconds_until_closed(sock, b"X-Slow: " + b"a" * 1000, limit_s=5) < 3
    with socket.create_connection(("127.0.0.1", bridge.port)) as sock:  # a body a byte at a time
        sock.sendall(b"POST /v1/heads HTTP/1.1\r\n" + _head(bridge, "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"))
        assert _seconds_until_closed(sock, b'{"seed": ' + b" " * 490, limit_s=5) < 3
    with socket.create_connection(("127.0.0.1", bridge.port)) as sock:  # a connection that says nothing
        sock.settimeout(5)
        assert sock.recv(1024) == b""
    assert bridge.call("GET", "/v1/health")[0] == 200
    assert "Traceback" not in _log(bridge)


def test_the_cache_is_private_whatever_the_umask(bridge):
    old = os.umask(0)
    try:
        bridge.start()
    finally:
        os.umask(old)
    status, head = bridge.call("POST", "/v1/heads", {"seed": 3})
    status, job = bridge.call("POST", "/v1/jobs/edit", {"head": head["id"], "steps": [], "grid": 64})
    assert status == 202, job
    assert bridge.wait(job["id"])["state"] == "done"
    if os.name != "posix":
        pytest.skip("permission bits are POSIX")
    jobs = bridge.cache / "jobs"
    for folder in (bridge.cache, jobs, jobs / job["id"], bridge.cache / "heads", bridge.cache / "modules"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder
    files = [*(jobs / job["id"]).iterdir(), *(bridge.cache / "heads").iterdir()]
    assert {p.name for p in (jobs / job["id"]).iterdir()} == {"job.json", "field.npz", "preview.png", "mask.png"}
    for path in files:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_hostile_service_cases_are_all_answered_as_expected(bridge):
    bridge.start()
    cases = hostile_service_cases(bridge.url, bridge.token)
    assert len({c["case"] for c in cases}) >= 35
    assert [c for c in cases if c["server_5xx"] or not c["ok"]] == []
    assert bridge.call("GET", "/v1/jobs")[1]["jobs"] == []
    assert "Traceback" not in _log(bridge)


def test_property_based_fuzzing_of_every_operation_finds_no_server_error(bridge):
    """Bodies drawn from the API's own schemas (at and past their bounds, NaN and Infinity, half
    of them chunked), malformed JSON and bytes, arbitrary path ids: never a 5xx, no traceback."""
    from benchmarks.fuzz import fuzz

    bridge.start()
    requests, server_errors, failures = fuzz(bridge.url, bridge.token, examples_per_operation=6)
    assert requests >= 60
    assert server_errors == 0, failures[:5]
    assert "Traceback" not in _log(bridge)


def test_a_flood_of_idle_connections_is_bounded_and_the_bridge_recovers(bridge):
    """More open connections than LIMITS.connections: the extra ones are answered 503 (or closed)
    instead of piling up, and once they go the bridge answers as before."""
    from bridge.service.settings import LIMITS

    bridge.start()
    sockets = []
    try:
        for _ in range(LIMITS.connections + 8):
            sockets.append(socket.create_connection(("127.0.0.1", bridge.port), timeout=5))
        time.sleep(0.3)
        status, _ = exchange(bridge.url, [f"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:{bridge.port}\r\n\r\n".encode()])
        assert status in (503, None)
    finally:
        for connection in sockets:
            connection.close()
    time.sleep(0.5)
    assert bridge.call("GET", "/v1/health")[0] == 200
    assert "Traceback" not in _log(bridge)


def test_a_foreign_edit_module_file_is_one_unusable_entry_not_a_broken_library(bridge):
    """An edit.json whose spec is not the prompts, or whose training record is a list, made
    GET /v1/modules, every prompt edit and every training answer 500."""
    import shutil

    from bridge.lenerf.edit_module import BUNDLED_LIBRARY

    for name, change in (
        ("odd_spec", {"spec": "blue eyes"}),
        ("odd_training", {"training": [1, 2]}),
        ("odd_prompt", {"spec": {"edit": 5}}),
    ):
        folder = bridge.cache / "modules" / name
        shutil.copytree(BUNDLED_LIBRARY / "blue_eyes", folder)
        metadata = json.loads((folder / "edit.json").read_text())
        (folder / "edit.json").write_text(json.dumps({**metadata, **change}))
    bridge.start()
    status, modules = bridge.call("GET", "/v1/modules")
    assert status == 200, modules
    by_name = {m["name"]: m for m in modules["modules"]}
    assert not by_name["odd_spec"]["usable"] and "does not describe an edit" in by_name["odd_spec"]["problem"]
    assert not by_name["odd_prompt"]["usable"] and by_name["blue_eyes"]["usable"]
    status, head = bridge.call("POST", "/v1/heads", {"seed": 1})
    status, job = bridge.call(
        "POST", "/v1/jobs/edit", {"head": head["id"], "steps": [{"edit": "green eyes", "mask": "eyes"}], "grid": 64, "previews": False}
    )
    assert status == 202, job
    assert bridge.wait(job["id"])["state"] == "done"
    assert "Traceback" not in _log(bridge)


def test_a_stored_head_changed_by_hand_is_one_sentence(bridge):
    """A head record that is a list answered 500; ws of another shape or NaN failed jobs as internal errors."""
    import torch
    from safetensors.torch import save_file

    bridge.start()
    heads = [bridge.call("POST", "/v1/heads", {"seed": seed})[1]["id"] for seed in (1, 2, 3)]
    (bridge.cache / "heads" / f"{heads[0]}.json").write_text("[1, 2]")
    save_file({"ws": torch.zeros(3, 3)}, str(bridge.cache / "heads" / f"{heads[1]}.safetensors"))
    save_file({"ws": torch.full((12, 256), float("nan"))}, str(bridge.cache / "heads" / f"{heads[2]}.safetensors"))
    for head in heads:
        status, body = bridge.call("GET", f"/v1/heads/{head}")
        assert status == 400 and body["detail"] == f"The stored head {head} is damaged; create it again.", (status, body)
        status, body = bridge.call("POST", "/v1/jobs/edit", {"head": head, "steps": [], "grid": 64})
        assert status == 400 and "damaged" in body["detail"], (status, body)
    assert "Traceback" not in _log(bridge)


def test_the_cache_does_not_grow_with_every_edit(bridge):
    """The add-on asks for its head before every edit (the live slider at every step): each was a
    new pair of files, kept for ever, as were pictures kept for head jobs."""
    stale = bridge.cache / "heads" / "0123456789abcdef.json"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("{}")
    os.utime(stale, (time.time() - 30 * 86400,) * 2)
    bridge.start()
    assert not stale.exists(), "files older than the results' days are deleted at start"
    ids = {bridge.call("POST", "/v1/heads", {"seed": 7, "params": {"hair_length": 0.5}})[1]["id"] for _ in range(5)}
    assert len(ids) == 1 and len(list((bridge.cache / "heads").iterdir())) == 2, "one head, one pair of files"
    assert bridge.call("POST", "/v1/heads", {"seed": 8})[1]["id"] not in ids
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # the same head asked for at once: one name, no writer in another's way
        answers = list(pool.map(lambda _: bridge.call("POST", "/v1/heads", {"seed": 9}), range(16)))
    assert {status for status, _ in answers} == {201} and len({body["id"] for _, body in answers}) == 1, answers[:2]
    assert not [p.name for p in (bridge.cache / "heads").iterdir() if not p.name.endswith((".json", ".safetensors"))]
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 150, 120)).save(buffer, "PNG")
    status, job = bridge.call("POST", "/v1/jobs/head", {"picture": base64.b64encode(buffer.getvalue()).decode(), "refine": 0})
    assert status == 202, job
    assert bridge.wait(job["id"])["state"] == "done"
    kept = sorted(p.name for p in (bridge.cache / "jobs" / job["id"]).iterdir())
    assert kept == ["job.json", "preview.png"], "the picture was kept for its job only (the preview is its result)"
