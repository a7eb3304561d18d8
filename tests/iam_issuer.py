"""A local IAM issuer for tests: real keys, real signed JWTs, a real HTTP verify endpoint and a JWKS endpoint.

It stands in for the IAM team's service at the one boundary we cannot run here. It signs with an RSA key
(RS256) and an EC P-256 key (ES256), publishes both at ``/.well-known/jwks.json`` and answers
``POST /api/v1/verify`` the way the README's IAM contract says (``200 {"valid": true, "claims": …}``,
``401 {"valid": false, "reason": …}``). Switches make it misbehave on purpose: ``mode`` = ``"ok"``,
``"slow"`` (answers after ``delay_seconds``), ``"5xx"``, ``"malformed"`` (not JSON), ``"wrong_shape"``
(JSON without a ``valid`` flag); ``jwks_mode`` the same for the JWKS endpoint.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://iam.test.local"
AUDIENCE = "oms-audit"
VERIFY_PATH = "/api/v1/verify"
JWKS_PATH = "/.well-known/jwks.json"
RSA_KID = "rsa-1"
EC_KID = "ec-1"

SERVICE_CLAIMS: dict[str, Any] = {
    "sub": "svc_deployment",
    "type": "service",
    "service_account": True,
    "roles": ["service", "schema:write"],
}


class LocalIssuer:
    """Signs tokens and serves verify + JWKS on 127.0.0.1 (free port). Use as a context manager."""

    def __init__(self, *, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.other_rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not published
        self.mode = "ok"
        self.jwks_mode = "ok"
        self.delay_seconds = 0.0
        self.verify_calls = 0
        self.jwks_calls = 0
        self.verify_bodies: list[dict[str, Any]] = []
        self.extra_jwks: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="iam-issuer", daemon=True)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalIssuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.url + JWKS_PATH

    def reset(self) -> None:
        self.mode = self.jwks_mode = "ok"
        self.delay_seconds = 0.0
        self.verify_calls = self.jwks_calls = 0
        self.verify_bodies.clear()
        self.extra_jwks.clear()

    # ------------------------------------------------------------------ tokens

    def token(
        self,
        sub: str | None = "u-123",
        *,
        username: str | None = "alice",
        roles: Iterable[str] = ("user",),
        alg: str = "RS256",
        kid: str | None = None,
        expires_in: float = 600,
        not_before_in: float | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        omit: Iterable[str] = (),
        key: Any = None,
        **claims: Any,
    ) -> str:
        """A signed JWT. ``alg`` RS256 (RSA key) or ES256 (EC key); ``key`` overrides the signing key."""
        now = time.time()
        body: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "aud": audience or self.audience,
            "iat": int(now),
            "exp": int(now + expires_in),
            "jti": uuid.uuid4().hex,
            "roles": list(roles),
        }
        if sub is not None:
            body["sub"] = sub
        if username is not None:
            body["preferred_username"] = username
        if not_before_in is not None:
            body["nbf"] = int(now + not_before_in)
        body.update(claims)
        for name in omit:
            body.pop(name, None)
        if key is None:
            key = self.ec_key if alg == "ES256" else self.rsa_key
        default_kid = EC_KID if alg == "ES256" else RSA_KID
        return jwt.encode(body, key, algorithm=alg, headers={"kid": kid or default_kid})

    def service_token(self, **overrides: Any) -> str:
        claims = {**SERVICE_CLAIMS, **overrides}
        sub = claims.pop("sub")
        roles = claims.pop("roles")
        return self.token(sub, username=claims.pop("username", None), roles=roles, **claims)

    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, alg, private in ((RSA_KID, "RS256", self.rsa_key), (EC_KID, "ES256", self.ec_key)):
            algorithm = jwt.get_algorithm_by_name(alg)
            jwk = json.loads(algorithm.to_jwk(private.public_key()))
            jwk.update({"kid": kid, "alg": alg, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys + self.extra_jwks}

    def publish_extra_key(self, kid: str, private: Any, alg: str = "RS256") -> None:
        """Add a key to the JWKS (a key rotation)."""
        jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(private.public_key()))
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        self.extra_jwks.append(jwk)

    # ------------------------------------------------------------------ the verify endpoint's verdict

    def verdict(self, token: str) -> tuple[int, dict[str, Any]]:
        keys = {RSA_KID: self.rsa_key.public_key(), EC_KID: self.ec_key.public_key()}
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                return 401, {"valid": False, "reason": "unknown signing key"}
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256", "ES256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            reason = next((text for kind, text in _REASONS if isinstance(exc, kind)), "malformed token")
            return 401, {"valid": False, "reason": reason}
        return 200, {"valid": True, "claims": claims}


_REASONS: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not valid yet"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.MissingRequiredClaimError, "missing required claim"),
]


def _handler_for(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _misbehave(self, mode: str) -> bool:
            if mode == "slow":
                time.sleep(issuer.delay_seconds)
                return False
            if mode == "5xx":
                self._reply(503, b'{"error": "maintenance"}')
                return True
            if mode == "malformed":
                self._reply(200, b"<html>proxy error</html>", "text/html")
                return True
            if mode == "wrong_shape":
                self._reply(200, b'{"ok": 1}')
                return True
            return False

        def do_GET(self) -> None:
            if self.path != JWKS_PATH:
                self._reply(404, b'{"error": "not found"}')
                return
            issuer.jwks_calls += 1
            if self._misbehave(issuer.jwks_mode):
                return
            self._reply(200, json.dumps(issuer.jwks()).encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path != VERIFY_PATH:
                self._reply(404, b'{"error": "not found"}')
                return
            issuer.verify_calls += 1
            if self._misbehave(issuer.mode):
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._reply(400, b'{"valid": false, "reason": "body is not JSON"}')
                return
            issuer.verify_bodies.append(body if isinstance(body, Mapping) else {})
            header = self.headers.get("Authorization", "")
            token = body.get("token") if isinstance(body, Mapping) else None
            if not isinstance(token, str) or header != f"Bearer {token}":
                self._reply(400, b'{"valid": false, "reason": "token missing or not the bearer token"}')
                return
            status, verdict = issuer.verdict(token)
            self._reply(status, json.dumps(verdict).encode())

    return Handler
