"""Who is calling: a caller's JWT turned into a verified :class:`Principal`, and nothing else.

A ``Principal`` is made only here, from the claims of a token one of the two verifiers accepted
(``open_verifier`` picks one from :class:`~core.settings.IamSettings`):

- :class:`JwksVerifier` checks the signature itself against the issuer's published keys (``IAM_JWKS_URL``):
  algorithms pinned to RS256/ES256 (so ``alg: none`` and HS256-signed-with-the-public-key fail), the key's
  type must fit the algorithm, ``exp``/``iss``/``aud`` required and checked with a small leeway. Keys
  (``PyJWK``) and signatures (PyJWT's algorithm objects) are PyJWT's; the compact-JWS parsing and the
  registered-claim checks are done here because ``jwt.decode`` re-validates the encoding character by
  character, which cost more than the RSA verification itself (bench/bench_identity.py). Keys are
  cached and fetched again when a token names an unknown ``kid`` (at most once per
  ``IAM_JWKS_MIN_REFRESH_SECONDS``, so garbage kids cannot turn us into a flood on the IAM). Key URLs named
  in a token (``jku``, ``x5u``) are never followed.
- :class:`IamServiceVerifier` asks the IAM service (``POST {IAM_SERVICE_URL}{IAM_VERIFICATION_ENDPOINT}``,
  HTTP/2 when the server offers it). A timeout, a 5xx or an unreadable reply is :class:`IamUnavailable`
  (no verdict), never a rejection and never an acceptance.

Either may keep accepted verdicts for ``IAM_CACHE_TTL_SECONDS`` (off by default), never past the token's
``exp``, keyed by a SHA-256 of the token (the token itself is not kept).

Service accounts carry exactly the guide's claims (``type: service``, ``service_account: true``, role
``service``); a token with some but not all of them is rejected rather than treated as a user.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import httpx
import jwt

from core.errors import ConfigError, IamNotConfigured, IamUnavailable, TokenRejected
from core.settings import IamSettings

__all__ = [
    "ALLOWED_ALGORITHMS",
    "IamServiceVerifier",
    "JwksVerifier",
    "Principal",
    "TokenVerifier",
    "UnconfiguredVerifier",
    "bearer_token",
    "open_verifier",
    "service_name_of",
]

ALLOWED_ALGORITHMS: Final = ("RS256", "ES256")
_KEY_TYPE_OF_ALGORITHM: Final = {"RS256": "RSA", "ES256": "EC"}
SERVICE_ROLE: Final = "service"
SERVICE_PREFIX: Final = "svc_"
_SEAL: Final = object()  # only this module can make a Principal


def service_name_of(subject: str) -> str:
    """The service name used in metrics: ``svc_deployment`` -> ``deployment``."""
    return subject.removeprefix(SERVICE_PREFIX)


@dataclass(frozen=True)
class Principal:
    """A verified caller. Built only by this module's verifiers (the constructor refuses anyone else)."""

    id: str
    username: str | None
    kind: Literal["user", "service"]
    roles: frozenset[str]
    issuer: str | None
    expires_at: datetime | None
    _seal: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._seal is not _SEAL:
            raise TypeError("A Principal is made only from a verified token (core.identity verifiers).")

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    @property
    def service_name(self) -> str | None:
        return service_name_of(self.id) if self.is_service else None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def public(self) -> dict[str, Any]:
        """What the service may show about the principal."""
        return {
            "id": self.id,
            "username": self.username,
            "kind": self.kind,
            "roles": sorted(self.roles),
            "service_name": self.service_name,
            "issuer": self.issuer,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


def _principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Apply the claim rules to claims whose token was verified."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise TokenRejected("the token has no subject (sub claim)")
    raw_roles = claims.get("roles", [])
    if isinstance(raw_roles, str):
        raw_roles = raw_roles.split()
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise TokenRejected("the roles claim is not a list of strings")
    roles = frozenset(raw_roles)
    username = claims.get("preferred_username") or claims.get("username")
    if username is not None and not isinstance(username, str):
        raise TokenRejected("the username claim is not a string")
    claims_service = claims.get("type") == "service" or claims.get("service_account") is True
    if claims_service:
        missing = [
            name
            for name, present in (
                ("type: service", claims.get("type") == "service"),
                ("service_account: true", claims.get("service_account") is True),
                ("role 'service'", SERVICE_ROLE in roles),
            )
            if not present
        ]
        if missing:
            raise TokenRejected(f"the token claims to be a service account but lacks {', '.join(missing)}")
    elif SERVICE_ROLE in roles:
        raise TokenRejected("the token has role 'service' but is not a service account (type/service_account)")
    exp = claims.get("exp")
    expires_at = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    issuer = claims.get("iss")
    return Principal(
        id=sub,
        username=username,
        kind="service" if claims_service else "user",
        roles=roles,
        issuer=issuer if isinstance(issuer, str) else None,
        expires_at=expires_at,
        _seal=_SEAL,
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or :class:`TokenRejected` saying what is wrong."""
    if not authorization:
        raise TokenRejected("no Authorization header; send 'Authorization: Bearer <JWT>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("the Authorization header is not 'Bearer <JWT>'")
    return token.strip()


class TokenVerifier(Protocol):
    """Turns a token into a principal, or raises TokenRejected (a verdict) / IamUnavailable (no verdict)."""

    async def verify(self, token: str) -> Principal: ...

    async def aclose(self) -> None: ...


class _VerdictCache:
    """Accepted verdicts by SHA-256 of the token, for at most ``ttl`` seconds and never past ``exp``."""

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self._entries: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        if self.ttl <= 0:
            return None
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            principal, until = entry
            if time.time() >= until:
                del self._entries[key]
                return None
            return principal

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        until = time.time() + self.ttl
        if principal.expires_at is not None:
            until = min(until, principal.expires_at.timestamp())
        key = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._entries[key] = (principal, until)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


# ----------------------------------------------------------------------------------------------------
# local JWKS


class JwksVerifier:
    """Verifies signatures locally against the keys published at ``IAM_JWKS_URL``."""

    def __init__(self, settings: IamSettings) -> None:
        if settings.jwks_url is None:
            raise ConfigError("IAM_JWKS_URL is not set.", variable="IAM_JWKS_URL")
        if not settings.issuer or not settings.audience:
            raise ConfigError(
                "IAM_JWKS_URL is set, so IAM_ISSUER and IAM_AUDIENCE must be set too (tokens are checked against "
                "both).",
                variable="IAM_ISSUER" if not settings.issuer else "IAM_AUDIENCE",
            )
        self.jwks_url = settings.jwks_url
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway_seconds
        self.min_refresh = settings.jwks_min_refresh_seconds
        self._timeout = settings.timeout_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self._cache = _VerdictCache(settings.cache_ttl_seconds)

    def verify_sync(self, token: str) -> Principal:
        """Verify in the calling thread (may fetch the JWKS, with the configured timeout)."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        header_part, payload_part, signature_part = _segments(token)
        return self._verified(token, _json_segment(header_part, "header"), header_part, payload_part, signature_part)

    def _verified(
        self, token: str, header: dict[str, Any], header_part: str, payload_part: str, signature_part: str
    ) -> Principal:
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not allowed (only {', '.join(ALLOWED_ALGORITHMS)})")
        if "crit" in header:
            raise TokenRejected("the token names critical header extensions (crit), which are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token header names no key (kid)")
        key = self._key(kid)
        if key.key_type != _KEY_TYPE_OF_ALGORITHM[alg] or (key.algorithm_name not in (alg, None)):
            raise TokenRejected(f"key {kid!r} is not a key for {alg}")
        # The signature with PyJWT's algorithm for the pinned name, over the exact bytes received.
        signing_input = f"{header_part}.{payload_part}".encode("ascii")
        if not _ALGORITHMS[alg].verify(signing_input, key.key, _b64decode(signature_part, "signature")):
            raise TokenRejected("bad signature")
        claims = _json_segment(payload_part, "payload")
        _check_registered_claims(claims, issuer=self.issuer, audience=self.audience, leeway=self.leeway)
        principal = _principal_from_claims(claims)
        self._cache.put(token, principal)
        return principal

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        parts = _segments(token)
        header = _json_segment(parts[0], "header")
        if header.get("kid") not in self._keys:  # the JWKS may be fetched: not on the event loop
            return await asyncio.to_thread(self._verified, token, header, *parts)
        return self._verified(token, header, *parts)

    async def aclose(self) -> None:
        return None

    def _key(self, kid: str) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is None and self._may_refresh():
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise TokenRejected(f"unknown signing key {kid!r} (not in the issuer's JWKS)")
        return key

    def _may_refresh(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self.min_refresh

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            reply = httpx.get(self.jwks_url, timeout=self._timeout, follow_redirects=False)
        except httpx.TimeoutException:
            raise IamUnavailable(self.jwks_url, reason=f"did not send its JWKS within {self._timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise IamUnavailable(self.jwks_url, reason=f"could not be reached ({type(exc).__name__})") from None
        if reply.status_code != 200:
            raise IamUnavailable(self.jwks_url, reason=f"answered HTTP {reply.status_code} for the JWKS")
        try:
            document = reply.json()
            keys = {}
            for entry in document["keys"]:
                if isinstance(entry, dict) and isinstance(entry.get("kid"), str) and entry.get("use", "sig") == "sig":
                    try:
                        keys[entry["kid"]] = jwt.PyJWK(entry)
                    except jwt.PyJWKError:
                        continue  # a key type we do not use (e.g. an encryption key) spoils nothing
        except (ValueError, KeyError, TypeError):
            raise IamUnavailable(self.jwks_url, reason="sent a JWKS that is not a JSON key set") from None
        self._keys = keys


_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]+")
_ALGORITHMS: Final = {name: jwt.get_algorithm_by_name(name) for name in ALLOWED_ALGORITHMS}


def _segments(token: str) -> tuple[str, str, str]:
    """The three base64url parts of a compact JWS, or TokenRejected (nothing else is a token)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise TokenRejected("malformed token (not a JWT: expected three base64url parts separated by dots)")
    return parts[0], parts[1], parts[2]


def _b64decode(segment: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, binascii.Error):
        raise TokenRejected(f"malformed token (the {what} is not base64url)") from None


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, what))
    except ValueError:
        raise TokenRejected(f"malformed token (the {what} is not JSON)") from None
    if not isinstance(value, dict):
        raise TokenRejected(f"malformed token (the {what} is not a JSON object)")
    return value


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose the key; the signature decides whether anything in it counts."""
    return _json_segment(_segments(token)[0], "header")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected(f"the {name!r} claim is not a number")
    return float(value)


def _check_registered_claims(claims: Mapping[str, Any], *, issuer: str, audience: str, leeway: int) -> None:
    """RFC 7519 checks after the signature: exp required and not past, nbf/iat not in the future, iss, aud."""
    now = time.time()
    expires = _number(claims, "exp")
    if expires is None:
        raise TokenRejected("the token has no 'exp' claim")
    if expires <= now - leeway:
        raise TokenRejected("the token has expired")
    for name in ("nbf", "iat"):
        moment = _number(claims, name)
        if moment is not None and moment > now + leeway:
            raise TokenRejected(f"the token is not valid yet ({name} in the future)")
    if "iss" not in claims:
        raise TokenRejected("the token has no 'iss' claim")
    if claims["iss"] != issuer:
        raise TokenRejected(f"wrong issuer (expected {issuer!r})")
    aud = claims.get("aud")
    if aud is None:
        raise TokenRejected("the token has no 'aud' claim")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise TokenRejected("the 'aud' claim is not a string or a list of strings")
    if audience not in audiences:
        raise TokenRejected(f"wrong audience (expected {audience!r})")


# ----------------------------------------------------------------------------------------------------
# the IAM service


class IamServiceVerifier:
    """Asks the IAM service for a verdict on each token (or the cache, when enabled)."""

    def __init__(self, settings: IamSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if settings.service_url is None:
            raise ConfigError("IAM_SERVICE_URL is not set.", variable="IAM_SERVICE_URL")
        self.url = settings.service_url + settings.verification_endpoint
        self._retries = settings.connect_retries
        self._timeout = settings.timeout_seconds
        self._cache = _VerdictCache(settings.cache_ttl_seconds)
        self._client = httpx.AsyncClient(
            http2=True,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=min(settings.timeout_seconds, 3.0)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=False,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        _unverified_header(token)  # garbage never leaves the process
        response = await self._post(token)
        principal = self._verdict(response)
        self._cache.put(token, principal)
        return principal

    async def _post(self, token: str) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await self._client.post(
                    self.url, json={"token": token}, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TimeoutException:
                raise IamUnavailable(self.url, reason=f"did not answer within {self._timeout:g}s") from None
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                # Connection errors only: the request may not have been seen, so a retry cannot double anything.
                attempt += 1
                if attempt > self._retries:
                    raise IamUnavailable(self.url, reason=f"could not be reached ({type(exc).__name__})") from None
                await asyncio.sleep(0.05 * attempt)
            except httpx.HTTPError as exc:
                raise IamUnavailable(self.url, reason=f"failed ({type(exc).__name__})") from None

    def _verdict(self, response: httpx.Response) -> Principal:
        status = response.status_code
        if status >= 500:
            raise IamUnavailable(self.url, reason=f"failed (HTTP {status})")
        body = _json_object(response)
        if status in (401, 403):
            raise TokenRejected(_reason(body, f"the IAM service refused the token (HTTP {status})"))
        if status != 200:
            raise IamUnavailable(self.url, reason=f"answered HTTP {status}; check IAM_VERIFICATION_ENDPOINT")
        if body is None or not isinstance(body.get("valid"), bool):
            raise IamUnavailable(self.url, reason="sent a reply without a boolean 'valid' (not the verify contract)")
        if not body["valid"]:
            raise TokenRejected(_reason(body, "the IAM service says the token is not valid"))
        claims = body.get("claims")
        if not isinstance(claims, dict):
            raise IamUnavailable(self.url, reason="accepted the token but sent no claims object")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp < time.time():
            raise TokenRejected("the token has expired")
        return _principal_from_claims(claims)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _reason(body: Mapping[str, Any] | None, default: str) -> str:
    reason = body.get("reason") or body.get("error") if body else None
    if isinstance(reason, str) and reason.strip():
        return reason.strip()[:200]
    return default


# ----------------------------------------------------------------------------------------------------


class UnconfiguredVerifier:
    """Refuses every token: neither IAM_JWKS_URL nor IAM_SERVICE_URL is set."""

    async def verify(self, token: str) -> Principal:
        raise IamNotConfigured()

    async def aclose(self) -> None:
        return None


def open_verifier(settings: IamSettings) -> TokenVerifier:
    """The verifier the settings choose: JWKS if ``IAM_JWKS_URL`` is set, else the IAM service, else none."""
    if settings.jwks_url is not None:
        return JwksVerifier(settings)
    if settings.service_url is not None:
        return IamServiceVerifier(settings)
    return UnconfiguredVerifier()
