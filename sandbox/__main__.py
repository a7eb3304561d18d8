"""``python -m sandbox``: run the TerminusDB-compatible sandbox server in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from sandbox.auth import ROLES
from sandbox.server import SandboxServer


def _pairs(values: list[str], option: str, example: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise SystemExit(f"error: {option} expects {example}, got a value without '='")
        result[key] = rest
    return result


def _roles(values: list[str]) -> dict[str, dict[str, str]]:
    roles: dict[str, dict[str, str]] = {}
    for user, spec in _pairs(values, "--role", "USER=ORG/DB:ROLE").items():
        database, sep, role = spec.rpartition(":")
        if not sep or role not in ROLES:
            raise SystemExit(f"error: --role expects USER=ORG/DB:ROLE with ROLE one of {sorted(ROLES)}")
        roles.setdefault(user, {})[database] = role
    return roles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=6363, help="TCP port (0 = pick a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--seed", choices=["demo"], help="create a seeded database at start")
    parser.add_argument("--data-dir", help="persist state here (loaded at start, saved after each commit)")
    parser.add_argument("--admin-password", default="root", help="password of the admin user (basic auth)")
    parser.add_argument(
        "--token", action="append", default=[], metavar="TOKEN=USER", help="accept a bearer token as USER"
    )
    parser.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="USER=ORG/DB:ROLE",
        help=f"restrict a token user to ROLE ({', '.join(ROLES)}) on ORG/DB ('*' = every database)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    tokens = {token: user for token, user in _pairs(args.token, "--token", "TOKEN=USER").items()}
    try:
        server = SandboxServer(
            args.port,
            args.host,
            seed=args.seed,
            data_dir=args.data_dir,
            admin_password=args.admin_password,
            tokens=tokens,
            roles=_roles(args.role),
        )
        server.bind()
    except (OSError, ValueError) as exc:
        print(f"error: cannot start the sandbox: {exc}", file=sys.stderr)
        return 2
    print(f"TerminusDB sandbox listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
