"""CurveZMQ keys for the link: make key pairs, and set sockets up as an authenticating server or a client.

With keys, the host's two sockets are CURVE servers and a ZAP authenticator admits only the client public
keys listed in `keys.authorized_clients`; everything on the link is encrypted. Key files are ZeroMQ's own
certificate format (`NAME.key` public, `NAME.key_secret` secret), as written by `zmq.auth`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from lekiwi_drift.config.robot import ConfigError, KeysConfig

log = logging.getLogger(__name__)


def make_keypair(directory: str | Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public, share it) and NAME.key_secret (keep it; mode 0600). Refuses to overwrite."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it first or pick another --name (keys are not replaced)")
    pub, sec = zmq.auth.create_certificates(str(directory), name)
    os.chmod(sec, 0o600)
    return Path(pub), Path(sec)


def _load(path: str, want_secret: bool, field: str) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"keys.{field}: cannot read key file {path!r} ({exc}); make keys with `lekiwi-drift keys`"
        ) from None
    if want_secret and not secret:
        raise ConfigError(f"keys.{field}: {path!r} holds no secret key; point it at the .key_secret file")
    return public, secret


class _AllowList:
    """ZAP credentials provider: admit exactly the listed client public keys."""

    def __init__(self, allowed: set[bytes]):
        self.allowed = allowed

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.allowed
        if not ok:
            log.warning("refused a client with an unknown CURVE key %s", key[:8].decode(errors="replace"))
        return ok


def start_authenticator(context: zmq.Context, keys: KeysConfig) -> ThreadAuthenticator:
    allowed = {_load(p, False, "authorized_clients")[0] for p in keys.authorized_clients}
    if not allowed:
        log.warning("CurveZMQ is on but keys.authorized_clients is empty: no client can connect")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(allowed))
    return auth


def make_server(sock: zmq.Socket, keys: KeysConfig) -> None:
    public, secret = _load(keys.host_secret, True, "host_secret")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_server = True


def make_client(sock: zmq.Socket, keys: KeysConfig) -> None:
    public, secret = _load(keys.client_secret, True, "client_secret")
    server_public, _ = _load(keys.host_public, False, "host_public")
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = server_public
