"""The bridge as a service: a real server process on loopback, measured from outside.

- edit_roundtrip_s_128: submit an edit (a shipped module, or an untrained identity module when the
  library has none: then `module` says so) on a cached head -> FieldGrid bytes in hand; median of 3.
- health_p99_ms_under_job: 99th percentile latency of GET /v1/health and GET /v1/jobs/{id} while a
  training job runs on the worker.
- fuzz_requests, fuzz_5xx: hypothesis bodies generated from the server's own OpenAPI schemas for
  every operation (NaN and Infinity included, half of them sent chunked), plus malformed bodies and
  ids; any 5xx answer counts.
- hostile_cases, hostile_failed: benchmarks/hostile_service.py's hostile requests (oversized and
  chunked bodies, huge heads, non-finite numbers, traversal, bad credentials...); the names of the
  cases not answered as expected. log_tracebacks: tracebacks in the bridge's log after all this.
- concurrent_clients_ok: clients that each create a head, submit an edit (grid 64), poll and fetch
  the grid at the same time; ok when every answer came and each grid is the client's own head.
  20 clients exceed the 16-job queue: a client told 429 waits a second and submits again.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import mesh_export
from bridge.service.client import BridgeBusy, BridgeClient
from bridge.service.launcher import LocalBridge
from bridge.service.security import read_token


def _identity_module(cache: Path) -> str:
    from bridge.lenerf.edit_module import EditModule, EditSpec
    from bridge.prior.model import HeadPrior

    prior = HeadPrior.load()
    EditModule.untrained(EditSpec("identity", "head"), prior.generator, prior.sha256).save(cache / "modules" / "identity")
    return "identity"


def _roundtrip(client: BridgeClient, head: str, module: str, grid: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    job = client.submit_edit(head, [{"module": module}], grid)
    client.wait(job["id"], poll_s=0.05)
    data = client.result(job["id"], "field.npz")
    return time.perf_counter() - started, data


def _latencies_under_job(client: BridgeClient, requests: int) -> list[float]:
    job = client.submit_training("red hair", "hair", steps=10_000, name="benchmark_load")
    while client.job(job["id"])["state"] != "running" or client.job(job["id"])["progress"] == 0:
        time.sleep(0.2)
    times = []
    for i in range(requests):
        started = time.perf_counter()
        client.health() if i % 2 == 0 else client.job(job["id"])
        times.append(1000 * (time.perf_counter() - started))
        time.sleep(0.01)
    client.cancel(job["id"])
    while client.job(job["id"])["state"] == "running":
        time.sleep(0.2)
    return times


def _concurrent(client: BridgeClient, module: str, clients: int) -> int:
    ok = [False] * clients

    def one(index: int) -> None:
        try:
            head = client.create_head(seed=100 + index)
            while True:  # a full queue (429) is an answer too: a polite client waits and retries
                try:
                    job = client.submit_edit(head["id"], [{"module": module}], 64)
                    break
                except BridgeBusy:
                    time.sleep(1.0)
            client.wait(job["id"], poll_s=0.3, timeout_s=900)
            grid = mesh_export.read_bytes(client.result(job["id"], "field.npz"))
            ok[index] = grid.provenance["head"]["id"] == head["id"] and grid.provenance["head"]["seed"] == 100 + index
        except Exception:
            ok[index] = False

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(ok)


def run(quick: bool = False) -> dict:
    from benchmarks.fuzz import fuzz
    from benchmarks.hostile_service import hostile_service_cases

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        bridge = LocalBridge(folder / "config", folder / "cache", log=folder / "bridge.log")
        with bridge:
            client = BridgeClient(bridge.url, read_token(bridge.config), timeout=120)
            shipped = [m["name"] for m in client.modules() if m["bundled"] and m["usable"]]
            module = shipped[0] if shipped else _identity_module(bridge.cache)
            head = client.create_head(seed=3)["id"]
            _roundtrip(client, head, module, 64)  # warm-up: loads the module
            roundtrips = [_roundtrip(client, head, module, 128)[0] for _ in range(1 if quick else 3)]
            latencies = sorted(_latencies_under_job(client, 100 if quick else 400))
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            fuzz_requests, fuzz_5xx, fuzz_examples = fuzz(bridge.url, client.token, 10 if quick else 60)
            hostile = hostile_service_cases(bridge.url, client.token)
            for job in client.jobs():
                if job["state"] in ("queued", "running"):
                    client.cancel(job["id"])
            while any(j["state"] in ("queued", "running") for j in client.jobs()):
                time.sleep(0.5)
            clients = 4 if quick else 20
            concurrent_ok = _concurrent(client, module, clients)
        tracebacks = bridge.log.read_text(errors="replace").count("Traceback")
    return {
        "edit_roundtrip_s_128": round(statistics.median(roundtrips), 2),
        "health_p99_ms_under_job": round(p99, 1),
        "health_median_ms_under_job": round(latencies[len(latencies) // 2], 1),
        "fuzz_requests": fuzz_requests,
        "fuzz_5xx": fuzz_5xx,
        "fuzz_5xx_examples": fuzz_examples[:3],
        "hostile_cases": len(hostile),
        "hostile_5xx": sum(c["server_5xx"] for c in hostile),
        "hostile_failed": [c["case"] for c in hostile if not c["ok"]],
        "log_tracebacks": tracebacks,
        "concurrent_clients": clients,
        "concurrent_clients_ok": concurrent_ok == clients,
        "concurrent_clients_answered": concurrent_ok,
        "module": module if shipped else "identity (no shipped module)",
        "quick": quick,
    }
