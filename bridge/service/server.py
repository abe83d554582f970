"""`python -m bridge serve`: build the engine, the job store and the worker, and run uvicorn."""

from __future__ import annotations

import logging
import os
import sys

from bridge.errors import BridgeError
from bridge.service.settings import LIMITS, LOOPBACK_HOSTS, cache_dir, config_dir, request_timeout_s

log = logging.getLogger(__name__)


def serve(
    host: str,
    port: int,
    device: str = "auto",
    allow_remote: bool = False,
    clip: str = "bundled",
    generator=None,
    open_model=None,
    noise_mode: str = "const",
    encoder=None,
) -> int:
    import uvicorn

    from bridge.service import security
    from bridge.service.api import create_app
    from bridge.service.engine import Engine
    from bridge.service.jobs import JobStore, Worker
    from bridge.service.logs import log_to_file
    from bridge.service.protocol import with_deadline

    if host not in LOOPBACK_HOSTS:
        if not allow_remote:
            raise BridgeError(f"Binding to {host} exposes the bridge to other machines; add --allow-remote if you mean it.")
        print(
            f"WARNING: the bridge listens on {host}: anyone who can reach it and has the token can use this machine's GPU.", file=sys.stderr
        )
    if os.name == "posix":
        os.umask(0o077)  # whatever the bridge writes (trained modules, checkpoints, logs) is its user's alone
    token = security.load_or_create_token(config_dir())
    cache = security.private_folder(cache_dir())
    log_to_file(cache)
    protocol = with_deadline(request_timeout_s())
    store = JobStore(cache / "jobs", LIMITS.result_days)
    store.recover()
    engine = Engine(cache, device, clip, generator=generator, open_model=open_model, noise_mode=noise_mode, encoder=encoder)
    worker = Worker(store, {"edit": engine.run_edit, "train": engine.run_training, "head": engine.run_head}, LIMITS.queued_jobs)
    worker.start()
    app = create_app(engine, store, worker, token, host, port)
    print(
        f"Text Edit bridge on http://{'[' + host + ']' if ':' in host else host}:{port} ({engine.device}); "
        f"token in {security.token_path(config_dir())}; work in {cache}",
        flush=True,
    )
    try:
        # h11 (no httptools) for the head limit and the request deadline; no WebSocket upgrades
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
            http=protocol,
            ws="none",
            timeout_keep_alive=LIMITS.keep_alive_s,
            h11_max_incomplete_event_size=LIMITS.request_head_bytes,
            limit_concurrency=LIMITS.connections,
        )
    finally:
        worker.stop()
    return 0
