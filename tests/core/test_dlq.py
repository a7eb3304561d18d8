"""The DLQ file protocol: whole lines under flock, re-open after a rename, torn lines repaired, claims."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.audit import Actor, AuditEvent
from core.dlq import DeadLetterQueue, parse_line
from core.errors import DlqUnavailable, DlqWriteFailed
from tests.permissions import bound_by_permissions

ROOT = Path(__file__).resolve().parents[2]


def make_event(**extra: object) -> AuditEvent:
    return AuditEvent.new(action="create", actor=Actor(id="u-1", username="alice"), resource_type="T", **extra)


def all_lines(directory: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(directory.glob("audit_dlq_*")):
        if path.name.endswith(".offset"):
            continue
        lines.extend(path.read_bytes().splitlines())
    return lines


def _writer(directory: str, writer: int, count: int) -> None:
    dlq = DeadLetterQueue(Path(directory))
    for number in range(count):
        dlq.append([make_event(writer=writer, number=number)])


def test_eight_writers_and_a_rename_mid_way_keep_every_line_intact(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), w, 1000)) for w in range(8)]
    for process in writers:
        process.start()
    dlq = DeadLetterQueue(tmp_path)
    live = dlq.path("fallback")
    deadline = time.monotonic() + 60
    while (not live.exists() or live.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.005)
    with dlq.claimer("renamer") as claimer:
        claimed = claimer.claim("fallback")  # the sweep's rename, under the writers' lock
    for process in writers:
        process.join(120)
        assert process.exitcode == 0

    assert len(claimed) == 1 and claimed[0].path.exists()
    assert live.exists(), "writers that found the file renamed away must start a fresh one"
    lines = all_lines(tmp_path)
    events = [AuditEvent.from_json_line(line) for line in lines]  # raises on any torn or mixed line
    assert len(events) == 8000
    assert len({e.event_id for e in events}) == 8000
    per_writer = {w: sorted(e.model_extra["number"] for e in events if e.model_extra["writer"] == w) for w in range(8)}
    assert all(numbers == list(range(1000)) for numbers in per_writer.values())
    assert 0 < claimed[0].path.stat().st_size < sum(len(line) + 1 for line in lines)


@pytest.mark.parametrize(
    "torn",
    [b'{"event_id": "half', '{"event_id": "x", "actor": {"username": "J\u00fcrgen'.encode()[:-1]],
    ids=["ascii", "inside-a-multibyte-character"],
)
def test_torn_last_line_is_ended_so_the_next_append_and_earlier_lines_survive(tmp_path: Path, torn: bytes) -> None:
    dlq = DeadLetterQueue(tmp_path)
    first = make_event()
    dlq.append([first])
    with dlq.path().open("ab") as handle:  # a writer that died mid-line
        handle.write(torn)
    second = make_event()
    dlq.append([second])

    lines = dlq.path().read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert AuditEvent.from_json_line(lines[0]).event_id == first.event_id
    assert lines[1] == torn
    assert parse_line(lines[1]).reason is not None
    assert AuditEvent.from_json_line(lines[2]).event_id == second.event_id


def test_append_stamps_dlq_type_and_enqueued_at_and_keeps_unknown_keys(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path, fsync=True)
    dlq.append([make_event(tenant="acme")], dlq_type="poison")
    (line,) = dlq.path("poison").read_text().splitlines()
    record = json.loads(line)
    assert record["dlq_type"] == "poison" and record["enqueued_at"] and record["tenant"] == "acme"


def test_missing_or_unwritable_folder_raises_dlq_write_failed(tmp_path: Path) -> None:
    with pytest.raises(DlqWriteFailed, match="does not exist"):
        DeadLetterQueue(tmp_path / "absent").append([make_event()])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # a writer process that the folder's mode binds (root's permission override dropped)
        script = (
            "import sys\n"
            "from core.dlq import DeadLetterQueue\n"
            "from core.errors import DlqWriteFailed\n"
            "from tests.core.test_dlq import make_event\n"
            "try:\n"
            "    DeadLetterQueue(sys.argv[1]).append([make_event()])\n"
            "except DlqWriteFailed as exc:\n"
            "    print(exc)\n"
            "    sys.exit(3)\n"
        )
        child = subprocess.run(
            bound_by_permissions([sys.executable, "-c", script, str(locked)]),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode == 3, child.stderr
        assert "permission denied" in child.stdout and "OMS_AUDIT_DLQ_DIR" in child.stdout
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_full_disk_leaves_no_half_line(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    (tmp_path / "audit_dlq_fallback.jsonl").symlink_to("/dev/full")
    with pytest.raises(DlqWriteFailed, match="disk full"):
        DeadLetterQueue(tmp_path).append([make_event()])


def test_append_raw_refuses_embedded_newlines(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="newline"):
        DeadLetterQueue(tmp_path).append_raw([b"a\nb"], "corrupt")


def test_stats_count_lines_and_find_the_oldest_incrementally(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path)
    assert {k: v.count for k, v in dlq.stats().items()} == {"fallback": 0, "poison": 0, "corrupt": 0}
    old = make_event()
    dlq.append([make_event(), make_event()])
    dlq.append([old.model_copy(update={"enqueued_at": old.occurred_at.replace(year=2020)})])
    stats = dlq.stats()
    assert stats["fallback"].count == 3 and stats["fallback"].oldest_enqueued_at.year == 2020
    assert stats["fallback"].oldest_age_seconds() > 3600
    dlq.append([make_event()])
    dlq.append_raw([b"", b"not json"], "fallback")  # a blank line is not an event
    assert dlq.stats()["fallback"].count == 5
    with dlq.claimer("r1") as claimer:
        claimer.claim()
        dlq.append([make_event()])
        assert dlq.stats()["fallback"].count == 6, "claimed files are still in the DLQ until finished"


def test_two_claimers_never_claim_the_same_file(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path)
    dlq.append([make_event()])
    with dlq.claimer("a") as a, dlq.claimer("b") as b:
        got = a.claim() + b.claim()
        assert len(got) == 1
        assert b.recover() == [], "a live sweep's claimed file is not adopted"
    assert len(list(tmp_path.glob("*.claimed-*"))) == 1


def test_a_dead_sweeps_claim_is_adopted_at_its_checkpoint(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path)
    dlq.append([make_event(), make_event()])
    with dlq.claimer("dead") as dead:
        (claimed,) = dead.claim()
        dead.checkpoint(claimed, 42)
    with dlq.claimer("next") as nxt:
        (adopted,) = nxt.recover()
        assert adopted.recovered and adopted.start_offset == 42
        assert adopted.path.name == "audit_dlq_fallback.jsonl.claimed-next.1"
        nxt.finish(adopted)
    assert not list(tmp_path.glob("audit_dlq_*")), "finish removes the claimed file and its checkpoint"
    assert not list(tmp_path.glob(".audit_dlq_run-*")), "run locks are cleaned up"


def test_one_sweep_adopting_two_dead_claims_of_one_source_keeps_both(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path)
    for run in ("dead1", "dead2"):
        dlq.append([make_event()])
        with dlq.claimer(run) as dead:
            dead.claim()
            (tmp_path / f"audit_dlq_fallback.jsonl.claimed-{run}.1.offset.tmp").write_text("junk")
    with dlq.claimer("next") as nxt:
        adopted = nxt.recover()
        assert len(adopted) == 2 and len({a.path for a in adopted}) == 2
        assert sum(len(a.path.read_bytes().splitlines()) for a in adopted) == 2
    assert not list(tmp_path.glob("*.tmp")), "a torn checkpoint write is not mistaken for a claimed file"


def test_reading_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DlqUnavailable, match="does not exist"):
        DeadLetterQueue(tmp_path / "absent").check_readable()
    with pytest.raises(DlqUnavailable):
        DeadLetterQueue(tmp_path / "absent").claimer("x").__enter__()


def test_read_lines_streams_a_10_mb_line_and_marks_an_unterminated_end(tmp_path: Path) -> None:
    path = tmp_path / "audit_dlq_fallback.jsonl"
    big = json.dumps({"blob": "x" * 10_000_000}).encode()
    path.write_bytes(b"a\n" + big + b"\ntail")
    lines = list(DeadLetterQueue.read_lines(path))
    assert [len(line.data) for line in lines] == [1, len(big), 4]
    assert [line.complete for line in lines] == [True, True, False]
    assert lines[2].offset == 2 + len(big) + 1 and lines[2].end == path.stat().st_size
    assert next(iter(DeadLetterQueue.read_lines(path, lines[2].offset))).data == b"tail"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an event object"),
        (b'{"action": "create"}', "event_id: missing"),
        (b'{"event_id": "\xff\xfe"}', "invalid UTF-8"),
    ],
)
def test_parse_line_says_why_a_line_is_not_an_event(line: bytes, reason: str) -> None:
    parsed = parse_line(line)
    assert parsed.event is None and parsed.reason is not None and reason in parsed.reason


def test_parse_line_on_a_valid_event_with_invalid_utf8_in_a_value() -> None:
    record = make_event().to_json_line().encode().replace(b'"alice"', b'"al\xffce"')
    parsed = parse_line(record)
    assert parsed.event is None and parsed.reason is not None and "UTF-8" in parsed.reason


@pytest.mark.parametrize("size", [1, 2, 500])
def test_read_line_batches_gives_the_lines_and_offsets_of_read_lines(tmp_path: Path, size: int) -> None:
    path = tmp_path / "audit_dlq_fallback.jsonl"
    big = json.dumps({"blob": "y" * 3_000_000}).encode()  # longer than a read chunk: joined up across reads
    path.write_bytes(b"a\n\n" + big + b"\r\nbb\n" + b"c" * 10 + b"\ntorn")
    expected = list(DeadLetterQueue.read_lines(path))
    for start in (0, expected[2].offset, expected[-1].offset):
        batches = list(DeadLetterQueue.read_line_batches(path, start, size))
        lines = [line for batch in batches for line in batch.lines]
        assert lines == [line.data for line in expected if line.offset >= start]
        assert all(len(batch.lines) <= size for batch in batches)
        assert all(len(batch.lines) == size for batch in batches[:-2]), "full batches across read chunks"
        assert [b.offset for b in batches[1:]] == [b.end for b in batches[:-1]], "batches are contiguous"
        assert batches[0].offset == start and batches[-1].end == path.stat().st_size
        assert batches[-1].lines == [b"torn"] and not batches[-1].complete
        assert all(batch.complete for batch in batches[:-1])


def test_read_line_batches_are_full_across_read_chunks(tmp_path: Path) -> None:
    path = tmp_path / "audit_dlq_fallback.jsonl"
    lines = [json.dumps({"n": n, "pad": "x" * (n % 700)}).encode() for n in range(5000)]  # ~1.8 MB, many chunks
    path.write_bytes(b"\n".join(lines) + b"\n")
    batches = list(DeadLetterQueue.read_line_batches(path, 0, 500))
    assert [len(batch.lines) for batch in batches] == [500] * 10
    assert [line for batch in batches for line in batch.lines] == lines
    assert [b.offset for b in batches[1:]] == [b.end for b in batches[:-1]] and batches[-1].end == path.stat().st_size
