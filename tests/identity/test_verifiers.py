"""Both verifiers against the local IAM issuer: what they accept, what they reject and why, and what is an error."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.errors import ConfigError, IamNotConfigured, IamUnavailable, TokenRejected
from core.identity import (
    IamServiceVerifier,
    JwksVerifier,
    Principal,
    TokenVerifier,
    UnconfiguredVerifier,
    bearer_token,
    open_verifier,
)
from core.settings import IamSettings
from tests.iam_issuer import AUDIENCE, ISSUER, LocalIssuer


def jwks_settings(iam: LocalIssuer, **extra: Any) -> IamSettings:
    return IamSettings(jwks_url=iam.jwks_url, issuer=ISSUER, audience=AUDIENCE, **extra)


def service_settings(iam: LocalIssuer, **extra: Any) -> IamSettings:
    return IamSettings(service_url=iam.url, **{"timeout_seconds": 1.0, **extra})


MAKERS: dict[str, Callable[[LocalIssuer], TokenVerifier]] = {
    "jwks": lambda iam: JwksVerifier(jwks_settings(iam)),
    "iam_service": lambda iam: IamServiceVerifier(service_settings(iam)),
}


@pytest.fixture(params=sorted(MAKERS))
def verify(request: pytest.FixtureRequest, iam: LocalIssuer) -> Iterator[Callable[[str], Principal]]:
    verifier = MAKERS[request.param](iam)
    loop = asyncio.new_event_loop()
    yield lambda token: loop.run_until_complete(verifier.verify(token))
    loop.run_until_complete(verifier.aclose())
    loop.close()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_good_user_token_rs256_and_es256(verify: Callable[[str], Principal], iam: LocalIssuer) -> None:
    for alg in ("RS256", "ES256"):
        principal = verify(iam.token("u-123", username="alice", roles=["user", "audit:read"], alg=alg))
        assert principal.id == "u-123"
        assert principal.username == "alice"
        assert principal.kind == "user"
        assert principal.has_role("audit:read")
        assert principal.issuer == ISSUER
        assert principal.expires_at is not None
        assert principal.service_name is None


def test_good_service_token(verify: Callable[[str], Principal], iam: LocalIssuer) -> None:
    principal = verify(iam.service_token())
    assert principal.kind == "service"
    assert principal.id == "svc_deployment"
    assert principal.service_name == "deployment"
    assert principal.roles == {"service", "schema:write"}


REJECTED: dict[str, tuple[Callable[[LocalIssuer], str], str]] = {
    "expired": (lambda iam: iam.token(expires_in=-3600), "expired"),
    "not_yet_valid": (lambda iam: iam.token(not_before_in=3600), "not valid yet"),
    "wrong_issuer": (lambda iam: iam.token(issuer="https://evil.example"), "issuer"),
    "wrong_audience": (lambda iam: iam.token(audience="another-app"), "audience"),
    "bad_signature": (
        lambda iam: iam.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "signature",
    ),
    "alg_none": (
        lambda iam: (
            f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'rsa-1'})}."
            f"{_b64({'sub': 'u-1', 'iss': ISSUER, 'aud': AUDIENCE, 'exp': 4102444800})}."
        ),
        "",
    ),
    "hs256_with_rsa_public_key": (
        lambda iam: _hs256_confusion(iam),
        "",
    ),
    "unknown_kid": (lambda iam: iam.token(kid="rotated-away"), ""),
    "missing_sub": (lambda iam: iam.token(sub=None), ""),
    "service_account_without_role": (
        lambda iam: iam.token("u-9", roles=["user"], type="service", service_account=True),
        "service",
    ),
    "malformed": (lambda iam: "not.a.jwt", "malformed"),
    "garbage": (lambda iam: "garbage", "malformed"),
    "missing_exp": (lambda iam: iam.token(omit=["exp"]), ""),
}


def _hs256_confusion(iam: LocalIssuer) -> str:
    """HS256 'signed' with the RSA public key as the HMAC secret: the classic key-confusion forgery."""
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = _b64({"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800})
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(iam.rsa_public_pem(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_rejected(case: str, verify: Callable[[str], Principal], iam: LocalIssuer) -> None:
    make, words = REJECTED[case]
    token = make(iam)
    with pytest.raises(TokenRejected) as caught:
        verify(token)
    assert words in caught.value.reason
    assert token not in str(caught.value)


@pytest.mark.parametrize("mode", ["5xx", "malformed", "wrong_shape", "slow"])
def test_iam_service_failures_are_errors_not_verdicts(mode: str, iam: LocalIssuer) -> None:
    iam.mode = mode
    iam.delay_seconds = 3.0
    verifier = IamServiceVerifier(service_settings(iam, timeout_seconds=0.5))
    token = iam.token()
    with pytest.raises(IamUnavailable) as caught:
        asyncio.run(verifier.verify(token))
    assert token not in str(caught.value)
    assert iam.url in str(caught.value)


def test_iam_service_unreachable_is_an_error_after_bounded_retries(iam: LocalIssuer) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = IamServiceVerifier(IamSettings(service_url=f"http://127.0.0.1:{port}", connect_retries=2))
    with pytest.raises(IamUnavailable, match="could not be reached"):
        asyncio.run(verifier.verify(iam.token()))


def test_iam_service_sends_the_contract_request(iam: LocalIssuer) -> None:
    token = iam.token()
    asyncio.run(IamServiceVerifier(service_settings(iam)).verify(token))
    assert iam.verify_bodies == [{"token": token}]


@pytest.mark.parametrize("mode", ["5xx", "malformed", "wrong_shape"])
def test_jwks_failures_are_errors_not_verdicts(mode: str, iam: LocalIssuer) -> None:
    iam.jwks_mode = mode
    with pytest.raises(IamUnavailable):
        JwksVerifier(jwks_settings(iam)).verify_sync(iam.token())


def test_jwks_refetched_on_unknown_kid_rate_limited(iam: LocalIssuer) -> None:
    verifier = JwksVerifier(jwks_settings(iam, jwks_min_refresh_seconds=3600))
    verifier.verify_sync(iam.token())
    assert iam.jwks_calls == 1
    for _ in range(5):  # a flood of unknown kids does not become a flood of JWKS fetches
        with pytest.raises(TokenRejected, match="unknown signing key"):
            verifier.verify_sync(iam.token(kid="nope"))
    assert iam.jwks_calls == 1


def test_jwks_key_rotation_is_picked_up(iam: LocalIssuer) -> None:
    verifier = JwksVerifier(jwks_settings(iam, jwks_min_refresh_seconds=0))
    verifier.verify_sync(iam.token())
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    iam.publish_extra_key("rsa-2", new_key)
    principal = verifier.verify_sync(iam.token("u-7", kid="rsa-2", key=new_key))
    assert principal.id == "u-7"
    assert iam.jwks_calls == 2


def test_jwks_never_follows_a_key_url_from_the_token(iam: LocalIssuer) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800},
        attacker,
        algorithm="RS256",
        headers={"kid": "attacker", "jku": "http://127.0.0.1:1/jwks.json"},
    )
    with pytest.raises(TokenRejected, match="unknown signing key"):
        JwksVerifier(jwks_settings(iam)).verify_sync(token)


def test_rs256_token_with_the_ec_kid_is_rejected(iam: LocalIssuer) -> None:
    with pytest.raises(TokenRejected, match="not a key for RS256"):
        JwksVerifier(jwks_settings(iam)).verify_sync(iam.token(alg="RS256", kid="ec-1"))


def test_cache_off_by_default_and_on_when_set(iam: LocalIssuer) -> None:
    token = iam.token()
    off = IamServiceVerifier(service_settings(iam))

    async def twice(verifier: IamServiceVerifier) -> None:
        await verifier.verify(token)
        await verifier.verify(token)
        await verifier.aclose()

    asyncio.run(twice(off))
    assert iam.verify_calls == 2
    asyncio.run(twice(IamServiceVerifier(service_settings(iam, cache_ttl_seconds=60))))
    assert iam.verify_calls == 3


def test_cache_never_outlives_the_token(iam: LocalIssuer) -> None:
    verifier = JwksVerifier(jwks_settings(iam, cache_ttl_seconds=3600, leeway_seconds=0))
    token = iam.token(expires_in=-1)  # already past exp: never cached, always rejected
    for _ in range(2):
        with pytest.raises(TokenRejected, match="expired"):
            verifier.verify_sync(token)


def test_choice_of_verifier(iam: LocalIssuer) -> None:
    assert isinstance(open_verifier(jwks_settings(iam)), JwksVerifier)
    assert isinstance(open_verifier(service_settings(iam)), IamServiceVerifier)
    none = open_verifier(IamSettings())
    assert isinstance(none, UnconfiguredVerifier)
    with pytest.raises(IamNotConfigured, match="IAM_JWKS_URL"):
        asyncio.run(none.verify(iam.token()))
    with pytest.raises(ConfigError, match="IAM_ISSUER"):
        JwksVerifier(IamSettings(jwks_url=iam.jwks_url))


def test_principal_cannot_be_made_by_hand() -> None:
    with pytest.raises(TypeError, match="verified token"):
        Principal(id="u-1", username="x", kind="service", roles=frozenset({"service"}), issuer=None, expires_at=None)


@pytest.mark.parametrize(
    ("header", "reason"),
    [(None, "no Authorization"), ("", "no Authorization"), ("Basic abc", "not 'Bearer"), ("Bearer ", "not 'Bearer")],
)
def test_bearer_token_header(header: str | None, reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        bearer_token(header)
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda iam: iam.token(iat=int(__import__("time").time()) + 3600), "not valid yet"),
        (lambda iam: iam.token(exp="tomorrow"), "'exp' claim is not a number"),
        (lambda iam: iam.token(audience=None, aud=["other", "third"]), "wrong audience"),
        (lambda iam: iam.token(omit=["iss"]), "no 'iss'"),
        (lambda iam: iam.token(omit=["aud"]), "no 'aud'"),
        (lambda iam: iam.token() + "=", "malformed"),
        (lambda iam: ".".join(iam.token().split(".")[:2]) + ".", "malformed"),
    ],
)
def test_jwks_registered_claim_and_format_rules(
    make: Callable[[LocalIssuer], str], reason: str, iam: LocalIssuer
) -> None:
    with pytest.raises(TokenRejected, match=reason):
        JwksVerifier(jwks_settings(iam)).verify_sync(make(iam))


def test_jwks_accepts_an_audience_list_and_refuses_crit(iam: LocalIssuer) -> None:
    verifier = JwksVerifier(jwks_settings(iam))
    assert verifier.verify_sync(iam.token("u-5", aud=["other", AUDIENCE])).id == "u-5"
    crit = jwt.encode(
        {"sub": "u-1", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800},
        iam.rsa_key,
        algorithm="RS256",
        headers={"kid": "rsa-1", "crit": ["b64"], "b64": True},
    )
    with pytest.raises(TokenRejected, match="crit"):
        verifier.verify_sync(crit)
    header, _payload, signature = iam.token("u-6").split(".")
    forged = _b64({"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800})
    with pytest.raises(TokenRejected, match="bad signature"):
        verifier.verify_sync(f"{header}.{forged}.{signature}")
