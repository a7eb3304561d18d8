"""The service under load vs the same inserts made directly against the sandbox, in one run.

16 concurrent clients post small documents for 20 s: first straight to the sandbox's document API (one
document per request, as an application without oms-audit would), then through ``POST /api/v1/objects``
(verify with the local JWKS, stamp, insert with the principal as author, audit event grouped into the
metadata database). Afterwards every successful service write must have its event in the sink or the DLQ.

The two paths alternate in ``--rounds`` short rounds (20 s in all per path) so that load from other work on
a shared machine falls on both alike.

Run: ``uv run python bench/bench_service.py [--seconds 20] [--clients 16] [--rounds 4] [--service-env NAME=VALUE ...]``

``--profile FILE`` runs the service under cProfile (its event-loop thread) and writes the stats to FILE
(read them with ``python -m pstats FILE``); the profiler's own overhead makes that run's rates meaningless.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from core.audit_fields import AUDIT_FIELDS, audit_field_range
from tests.iam_issuer import AUDIENCE, ISSUER, LocalIssuer

ROOT = Path(__file__).resolve().parents[1]
AUTH = ("admin", "root")
SCHEMA = {
    "@type": "Class",
    "@id": "ObjectType",
    "@key": {"@type": "Lexical", "@fields": ["name"]},
    "name": "xsd:string",
    "description": {"@type": "Optional", "@class": "xsd:string"},
    **{field: audit_field_range(field) for field in AUDIT_FIELDS},
}


#: the service's entry under cProfile, timing CPU of the event-loop thread (not wall time, which the other
#: processes on the shared machine would inflate)
PROFILED = (
    "import cProfile, time; from service.server import main; profile = cProfile.Profile(time.thread_time); "
    "profile.enable()\ntry:\n    main()\nfinally:\n    profile.disable(); profile.dump_stats({out!r})"
)


ENTRY = "from service.server import main; main()"


def thread_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the main thread — the event loop, all other threads) of a process so far."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return main, other


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def make_db(base: str, name: str) -> None:
    with httpx.Client(base_url=base, auth=AUTH, timeout=60) as client:
        assert client.post(f"/api/db/admin/{name}", json={"label": name}).status_code == 200
        reply = client.post(
            f"/api/document/admin/{name}",
            params={"graph_type": "schema", "author": "bench", "message": "s"},
            json=SCHEMA,
        )
        assert reply.status_code == 200, reply.text


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def load(
    url: str, headers_for: list[dict[str, str]], request_for: Any, seconds: float, clients: int
) -> tuple[int, int, list[float]]:
    """``clients`` threads, each with its own keep-alive connection, posting back to back for ``seconds``."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        mine: list[float] = []
        failed = 0
        with httpx.Client(base_url=url, timeout=30, headers=headers_for[index]) as http:
            sequence = 0
            while time.monotonic() < stop_at:
                sequence += 1
                method, path, params, body, ok = request_for(index, sequence)
                start = time.perf_counter()
                reply = http.request(method, path, params=params, json=body)
                mine.append(time.perf_counter() - start)
                failed += reply.status_code != ok
        with lock:
            latencies.extend(mine)
            failures[0] += failed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) - failures[0], failures[0], latencies


def count_events(base: str, meta: str) -> int:
    reply = httpx.get(
        f"{base}/api/document/admin/{meta}", params={"type": "AuditEvent", "as_list": "false"}, auth=AUTH, timeout=120
    )
    return sum(1 for line in reply.text.splitlines() if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4, help="alternate the two paths this many times")
    parser.add_argument("--service-env", action="append", default=[], help="NAME=VALUE for the service")
    parser.add_argument(
        "--service-arg", action="append", default=[], help="an argument for the service, e.g. --loop=asyncio"
    )
    parser.add_argument("--profile", type=Path, help="profile the service with cProfile into this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-service-"))
    sandbox_port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", str(sandbox_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{sandbox_port}"
    service: subprocess.Popen[bytes] | None = None
    try:
        wait_for(base + "/api/ok")
        direct_db, service_db, meta = (f"bench_{kind}_{uuid.uuid4().hex[:6]}" for kind in ("direct", "service", "meta"))
        make_db(base, direct_db)
        make_db(base, service_db)
        with LocalIssuer() as issuer:
            dlq = tmp / "dlq"
            dlq.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith(("IAM_", "TERMINUS_DB_", "OMS_AUDIT_"))}
            env.update(
                TERMINUS_DB_URL=base,
                TERMINUS_DB_NAME=service_db,
                OMS_AUDIT_META_DB=meta,
                OMS_AUDIT_DLQ_DIR=str(dlq),
                IAM_JWKS_URL=issuer.jwks_url,
                IAM_ISSUER=ISSUER,
                IAM_AUDIENCE=AUDIENCE,
            )
            env.update(item.split("=", 1) for item in args.service_env)
            port = free_port()
            entry = (
                PROFILED.format(out=str(args.profile.resolve()))
                if args.profile
                else "from service.server import main; main()"
            )
            service = subprocess.Popen(
                [sys.executable, "-c", entry, "--port", str(port), "--log-level", "warning", *args.service_arg],
                cwd=ROOT,
                env=env,
                stdout=(tmp / "service.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            wait_for(f"http://127.0.0.1:{port}/healthz")
            stamp = {
                "_created_by": "u-0",
                "_created_by_username": "user0",
                "_created_at": "2026-01-01T00:00:00.000Z",
                "_updated_by": "u-0",
                "_updated_by_username": "user0",
                "_updated_at": "2026-01-01T00:00:00.000Z",
            }

            current_round = [0]  # part of each document's name: a round's sequence numbers start again at 1

            def direct_request(index: int, sequence: int) -> Any:
                body = {
                    "@type": "ObjectType",
                    "name": f"d-{current_round[0]}-{index}-{sequence}",
                    "description": "bench",
                    **stamp,
                }
                params = {"author": f"u-{index}", "message": "create ObjectType"}
                return "POST", f"/api/document/admin/{direct_db}", params, body, 200

            def service_request(index: int, sequence: int) -> Any:
                body = {
                    "@type": "ObjectType",
                    "name": f"s-{current_round[0]}-{index}-{sequence}",
                    "description": "bench",
                }
                return "POST", "/api/v1/objects", None, body, 201

            basic = httpx.BasicAuth(*AUTH)
            auth_header = basic._auth_header  # the same Basic header for every direct request
            direct_headers = [{"Authorization": auth_header}] * args.clients
            tokens = [
                {"Authorization": f"Bearer {issuer.token(f'u-{i}', username=f'user{i}', expires_in=3600)}"}
                for i in range(args.clients)
            ]
            # The paths alternate in short rounds, so load from other work on the shared machine falls on both
            # alike instead of on whichever ran second.
            labels = ("direct to the sandbox", "through the service")
            targets = {
                labels[0]: (base, direct_headers, direct_request),
                labels[1]: (f"http://127.0.0.1:{port}", tokens, service_request),
            }
            results: dict[str, tuple[int, int, list[float]]] = {label: (0, 0, []) for label in labels}
            spent = {label: [0.0, 0.0, 0.0] for label in labels}
            threads = [0.0, 0.0]
            for round_number in range(args.rounds):
                current_round[0] = round_number
                for label in labels:
                    before = (cpu_seconds(sandbox.pid), cpu_seconds(service.pid), time.process_time())
                    threads_before = thread_cpu(service.pid)
                    ok, failed, latencies = load(*targets[label], args.seconds / args.rounds, args.clients)
                    after = (cpu_seconds(sandbox.pid), cpu_seconds(service.pid), time.process_time())
                    threads_after = thread_cpu(service.pid)
                    total_ok, total_failed, all_latencies = results[label]
                    results[label] = (total_ok + ok, total_failed + failed, all_latencies + latencies)
                    for index in range(3):
                        spent[label][index] += after[index] - before[index]
                    if label == labels[1]:
                        threads[0] += threads_after[0] - threads_before[0]
                        threads[1] += threads_after[1] - threads_before[1]
            cpu: dict[str, tuple[float, float, float]] = {}
            for label in labels:
                done = max(1, results[label][0])
                sandbox_ms, service_ms, client_ms = (seconds / done * 1000 for seconds in spent[label])
                cpu[label] = (sandbox_ms, service_ms, client_ms)
            # uvicorn re-raises the signal after its graceful shutdown: SIGINT lets cProfile write its stats
            service.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
            service.wait(timeout=60)
            service = None
        events = count_events(base, meta)
        dlq_lines = sum(len(p.read_text().splitlines()) for p in (tmp / "dlq").glob("audit_dlq_*.jsonl"))
    finally:
        if service is not None:
            service.kill()
        sandbox.terminate()
        sandbox.wait(timeout=30)

    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s per path in {args.rounds} alternating rounds, "
        "one document per request"
    )
    print("| path | writes ok | failed | writes/s | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    rates = {}
    for label, (ok, failed, latencies) in results.items():
        rates[label] = ok / args.seconds
        print(
            f"| {label} | {ok:,} | {failed} | {rates[label]:,.0f} | {statistics.median(latencies) * 1000:.1f} "
            f"| {percentile(latencies, 0.99) * 1000:.1f} |"
        )
    service_ok = results["through the service"][0]
    ratio = rates["through the service"] / rates["direct to the sandbox"]
    print(f"\nservice / direct: {ratio:.0%} (goal >= 60%)")
    print("\nCPU per successful write (ms): | path | sandbox | service | load clients |")
    for label, (sandbox_ms, service_ms, client_ms) in cpu.items():
        print(f"| {label} | {sandbox_ms:.2f} | {service_ms:.2f} | {client_ms:.2f} |")
    done = max(1, service_ok)
    loop_ms, other_ms = (seconds / done * 1000 for seconds in threads)
    print(f"service CPU per write by thread: event loop {loop_ms:.2f} ms, pool threads {other_ms:.2f} ms")
    print(f"audit events: {events:,} in the sink + {dlq_lines:,} in the DLQ for {service_ok:,} service writes")
    print("every event delivered:", "yes" if events + dlq_lines >= service_ok else "NO")


if __name__ == "__main__":
    main()
