"""`lekiwi-drift keys`: make CurveZMQ key pairs for the host and a client."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("keys", help="make CurveZMQ key pairs (host + client) for an encrypted, authenticated link")
    p.add_argument("--dir", default=".keys", help="where to write the key files (default: .keys)")
    p.add_argument("--name", action="append", help="key pair name(s) (default: host and client)")
    p.set_defaults(run=run)


def run(args) -> int:
    from lekiwi_drift.link.keys import make_keypair

    names = args.name or ["host", "client"]
    for name in names:
        public, secret = make_keypair(args.dir, name)
        print(f"{name}: public {public}  secret {secret}")
    print(
        "\nOn the robot (lekiwi.yaml):  keys: {host_secret: .../host.key_secret, "
        "authorized_clients: [.../client.key]}\n"
        "On the laptop (lekiwi.yaml): keys: {client_secret: .../client.key_secret, host_public: .../host.key}\n"
        "Copy only public (.key) files between machines; keep each .key_secret where it was made."
    )
    return 0
