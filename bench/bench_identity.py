"""Verify + stamp per document with the local JWKS verifier, on one core: cache off and on.

Each document comes with its own token (a pool of distinct tokens, as from many callers), is verified
(signature, exp/iss/aud, claim rules) and stamped. With the cache on, each token is verified once and then
found by its SHA-256. The JWKS is served by the tests' local issuer; it is fetched once before timing.

On a shared machine the wall-clock rate depends on what else runs; the rate per CPU second of the process
(pinned to one core) is the steadier number.

It also times PyJWT's public API doing the same verification (RS256, cache off) — ``jwt.PyJWT().decode``
with the header read by ``jwt.get_unverified_header`` to pick the key, and ``PyJWS().decode_complete``
(signature only, claims checked here) — to decide whether ``core/identity.py`` could use it instead of its
own compact-JWS parsing.

Run: ``uv run python bench/bench_identity.py``
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import UTC, datetime

import jwt

from core.identity import JwksVerifier, _check_registered_claims, _principal_from_claims
from core.settings import IamSettings, load_settings
from core.stamping import stamp_create
from tests.iam_issuer import AUDIENCE, ISSUER, LocalIssuer

DOCUMENTS = 20_000
TOKENS = 1_000
REPEATS = 3


def run(verifier: JwksVerifier, tokens: list[str]) -> tuple[float, float]:
    """(documents per wall-clock second, documents per CPU second of this process)."""
    document = {"@type": "ObjectType", "name": "x", "_created_by": "forged"}
    start, start_cpu = time.perf_counter(), time.process_time()
    for index in range(DOCUMENTS):
        principal = verifier.verify_sync(tokens[index % len(tokens)])
        stamp_create(document, principal, datetime.now(UTC))
    return DOCUMENTS / (time.perf_counter() - start), DOCUMENTS / (time.process_time() - start_cpu)


def run_pyjwt(verifier: JwksVerifier, tokens: list[str], how: str) -> tuple[float, float]:
    """The same verify + stamp with PyJWT's public API (keys from the verifier's JWKS)."""
    document = {"@type": "ObjectType", "name": "x", "_created_by": "forged"}
    decoder, jws = jwt.PyJWT(), jwt.api_jws.PyJWS()
    options = {"require": ["exp", "iss", "aud"]}
    start, start_cpu = time.perf_counter(), time.process_time()
    for index in range(DOCUMENTS):
        token = tokens[index % len(tokens)]
        header = jwt.get_unverified_header(token)
        key = verifier._key(header["kid"]).key
        if how == "PyJWT().decode":
            claims = decoder.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=verifier.audience,
                issuer=verifier.issuer,
                leeway=verifier.leeway,
                options=options,  # type: ignore[arg-type]
            )
        else:
            payload = jws.decode_complete(token, key, algorithms=[header["alg"]])["payload"]
            claims = json.loads(payload)
            _check_registered_claims(claims, issuer=verifier.issuer, audience=verifier.audience, leeway=verifier.leeway)
        stamp_create(document, _principal_from_claims(claims), datetime.now(UTC))
    return DOCUMENTS / (time.perf_counter() - start), DOCUMENTS / (time.process_time() - start_cpu)


def main() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with LocalIssuer() as issuer:
        rows = []
        for alg in ("RS256", "ES256"):
            tokens = [issuer.token(f"u-{i}", username=f"user{i}", alg=alg, expires_in=3600) for i in range(TOKENS)]
            for ttl in (0, 60):
                settings = load_settings(
                    IamSettings, jwks_url=issuer.jwks_url, issuer=ISSUER, audience=AUDIENCE, cache_ttl_seconds=ttl
                )
                rates, cpu_rates = [], []
                for _ in range(REPEATS):
                    verifier = JwksVerifier(settings)
                    verifier.verify_sync(tokens[0])  # fetch the JWKS outside the timing
                    wall, cpu = run(verifier, tokens)
                    rates.append(wall)
                    cpu_rates.append(cpu)
                rows.append((alg, "on (60 s)" if ttl else "off", rates, cpu_rates))
        tokens = [issuer.token(f"u-{i}", username=f"user{i}", expires_in=3600) for i in range(TOKENS)]
        settings = load_settings(IamSettings, jwks_url=issuer.jwks_url, issuer=ISSUER, audience=AUDIENCE)
        for how in ("PyJWT().decode", "PyJWS().decode_complete"):
            rates, cpu_rates = [], []
            for _ in range(REPEATS):
                verifier = JwksVerifier(settings)
                verifier.verify_sync(tokens[0])
                wall, cpu = run_pyjwt(verifier, tokens, how)
                rates.append(wall)
                cpu_rates.append(cpu)
            rows.append((f"RS256 via {how}", "off", rates, cpu_rates))
    print(f"{DOCUMENTS:,} documents, {TOKENS:,} distinct tokens, {REPEATS} runs, one core")
    print("| algorithm | cache | docs/s (wall, median) | min | max | docs per CPU second (median) | CPU µs per doc |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for alg, cache, rates, cpu_rates in rows:
        median, cpu_median = statistics.median(rates), statistics.median(cpu_rates)
        print(
            f"| {alg} | {cache} | {median:,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | {cpu_median:,.0f} "
            f"| {1e6 / cpu_median:.1f} |"
        )


if __name__ == "__main__":
    main()
