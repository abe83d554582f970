"""`python -m bridge serve`: build the engine, the job store and the worker, and run uvicorn."""

from __future__ import annotations

import logging
import os
import socket
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
    from bridge.service import security

    if host not in LOOPBACK_HOSTS:
        if not allow_remote:
            raise BridgeError(f"Binding to {host} exposes the bridge to other machines; add --allow-remote if you mean it.")
        print(
            f"WARNING: the bridge listens on {host}: anyone who can reach it and has the token can use this machine's GPU.", file=sys.stderr
        )
    if os.name == "posix":
        os.umask(0o077)  # whatever the bridge writes (trained modules, checkpoints, logs) is its user's alone
    try:
        token = security.load_or_create_token(config_dir())
    except OSError as error:
        raise BridgeError(_unusable(config_dir(), "config", "TEXT_EDIT_CONFIG_DIR", error)) from None
    try:
        cache = security.private_folder(cache_dir())
    except OSError as error:
        raise BridgeError(_unusable(cache_dir(), "cache", "TEXT_EDIT_CACHE_DIR", error)) from None
    listening = _bound_socket(host, port)  # before the models load and before the start line is printed
    try:
        return _serve_on(listening, host, port, token, cache, device, clip, generator, open_model, noise_mode, encoder)
    finally:
        listening.close()


def _serve_on(
    listening: socket.socket, host: str, port: int, token: str, cache, device, clip, generator, open_model, noise_mode, encoder
) -> int:
    import uvicorn

    from bridge.service import security
    from bridge.service.api import create_app
    from bridge.service.engine import Engine
    from bridge.service.jobs import JobStore, Worker
    from bridge.service.logs import log_to_file
    from bridge.service.protocol import with_deadline

    log_to_file(cache)
    protocol = with_deadline(request_timeout_s())
    store = JobStore(cache / "jobs", LIMITS.result_days)
    store.recover()
    engine = Engine(cache, device, clip, generator=generator, open_model=open_model, noise_mode=noise_mode, encoder=encoder)
    worker = Worker(store, {"edit": engine.run_edit, "train": engine.run_training, "head": engine.run_head}, LIMITS.queued_jobs)
    worker.start()
    app = create_app(engine, store, worker, token, host, port)
    listening.listen(LIMITS.connections)
    print(
        f"Text Edit bridge on http://{'[' + host + ']' if ':' in host else host}:{port} ({engine.device}); "
        f"token in {security.token_path(config_dir())}; work in {cache}",
        flush=True,
    )
    try:
        # h11 (no httptools) for the head limit and the request deadline; no WebSocket upgrades
        config = uvicorn.Config(
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
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        worker.stop()
    return 0


def _unusable(folder, what: str, variable: str, error: OSError) -> str:
    reason = "a file is in the way" if isinstance(error, (FileExistsError, NotADirectoryError)) else (error.strerror or str(error))
    return f"Cannot use {folder} as the bridge's {what} folder ({reason}); set {variable} to a folder you can write."


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port for uvicorn to listen on, or one sentence saying why not."""
    if not 1 <= port <= 65535:
        raise BridgeError(f"--port must be between 1 and 65535, not {port}.")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn binds: "localhost" is 127.0.0.1
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, protocol)
    except (OSError, UnicodeError) as error:
        raise BridgeError(
            f"Cannot listen on {host!r} ({getattr(error, 'strerror', None) or error}); give an address of this computer."
        ) from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as error:
        listening.close()
        raise BridgeError(
            f"Cannot listen on {host}:{port} ({error.strerror or error}); stop whatever uses that port or choose another --port."
        ) from None
    return listening
