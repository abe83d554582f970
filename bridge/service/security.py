"""The bridge's token and the checks that keep other programs and web pages off it.

The token is created on first start in the config folder with owner-only permissions. Every
request but GET /v1/health must send it as `Authorization: Bearer <token>`. A request whose Host
header is not the address the bridge listens on (DNS rebinding), or that carries an Origin header
(a browser page), is refused: a web page must not drive a local GPU.

The cache (heads, jobs, results) is the user's alone: its folders are 0700 and the files the bridge
writes there 0600, set explicitly so the umask does not matter.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import uuid
from pathlib import Path

from ..errors import BridgeError

TOKEN_FILE = "token"
TOKEN_BYTES = 32


def token_path(folder: Path) -> Path:
    return Path(folder) / TOKEN_FILE


def load_or_create_token(folder: Path) -> str:
    """The token in `folder`, created (owner read/write only) when there is none."""
    path = token_path(folder)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another bridge created it first: use theirs
            return read_token(folder)
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        return token
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)
    return read_token(folder)


def read_token(folder: Path) -> str:
    path = token_path(folder)
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise BridgeError(f"No bridge token at {path}; start the bridge once (python -m bridge serve) to create it.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BridgeError(f"Cannot read the bridge token {path} ({error}); delete it and restart the bridge.") from None
    if len(token) < 16 or not token.isascii() or any(c.isspace() for c in token):
        raise BridgeError(f"The bridge token {path} is damaged; delete it and restart the bridge to make a new one.")
    return token


def token_matches(expected: str, authorization: str | None) -> bool:
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), expected.encode())


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values that name this bridge."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        names.add(f"[{host}]" if ":" in host else host)
    return frozenset(names | {f"{name}:{port}" for name in names})


def private_folder(path: Path) -> Path:
    """`path`, made with its parents when missing, readable by its owner only (0700)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """`path` made readable by its owner only (0600)."""
    if os.name == "posix":
        os.chmod(path, 0o600)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` (owner-only) in one step: a temporary file beside it, then os.replace."""
    path = Path(path)
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")  # two writers of one path never share it
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(data)
    os.replace(private_file(temporary), path)
