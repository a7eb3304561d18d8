"""Verify + stamp per document with the local JWKS verifier, on one core: cache off and on.

Each document comes with its own token (a pool of distinct tokens, as from many callers), is verified
(signature, exp/iss/aud, claim rules) and stamped. With the cache on, each token is verified once and then
found by its SHA-256. The JWKS is served by the tests' local issuer; it is fetched once before timing.

Run: ``uv run python bench/bench_identity.py``
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime

from core.identity import JwksVerifier
from core.settings import IamSettings
from core.stamping import stamp_create
from tests.iam_issuer import AUDIENCE, ISSUER, LocalIssuer

DOCUMENTS = 20_000
TOKENS = 1_000
REPEATS = 3


def run(verifier: JwksVerifier, tokens: list[str]) -> float:
    document = {"@type": "ObjectType", "name": "x", "_created_by": "forged"}
    start = time.perf_counter()
    for index in range(DOCUMENTS):
        principal = verifier.verify_sync(tokens[index % len(tokens)])
        stamp_create(document, principal, datetime.now(UTC))
    return DOCUMENTS / (time.perf_counter() - start)


def main() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    with LocalIssuer() as issuer:
        rows = []
        for alg in ("RS256", "ES256"):
            tokens = [issuer.token(f"u-{i}", username=f"user{i}", alg=alg, expires_in=3600) for i in range(TOKENS)]
            for ttl in (0, 60):
                settings = IamSettings(
                    jwks_url=issuer.jwks_url, issuer=ISSUER, audience=AUDIENCE, cache_ttl_seconds=ttl
                )
                rates = []
                for _ in range(REPEATS):
                    verifier = JwksVerifier(settings)
                    verifier.verify_sync(tokens[0])  # fetch the JWKS outside the timing
                    rates.append(run(verifier, tokens))
                rows.append((alg, "on (60 s)" if ttl else "off", rates))
    print(f"{DOCUMENTS:,} documents, {TOKENS:,} distinct tokens, {REPEATS} runs, one core")
    print("| algorithm | cache | docs/s (median) | min | max | µs per doc |")
    print("|---|---|---:|---:|---:|---:|")
    for alg, cache, rates in rows:
        median = statistics.median(rates)
        print(f"| {alg} | {cache} | {median:,.0f} | {min(rates):,.0f} | {max(rates):,.0f} | {1e6 / median:.1f} |")


if __name__ == "__main__":
    main()
