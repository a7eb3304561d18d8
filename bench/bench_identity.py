"""Verify + stamp per document with the local JWKS verifier, on one core: cache off and on.

Each document comes with its own token (a pool of distinct tokens, as from many callers), is verified
(signature, exp/iss/aud, claim rules) and stamped. With the cache on, each token is verified once and then
found by its SHA-256. The JWKS is served by the tests' local issuer; it is fetched once before timing.

On a shared machine the wall-clock rate depends on what else runs; the rate per CPU second of the process
(pinned to one core) is the steadier number.

Run: ``uv run python bench/bench_identity.py``
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime

from core.identity import JwksVerifier
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
