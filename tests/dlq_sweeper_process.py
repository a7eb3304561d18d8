"""A bare sweep process for the crash trials: recover, claim, replay into an HTTP audit backend.

``python -m tests.dlq_sweeper_process DLQ_DIR BACKEND_URL BATCH_SIZE`` prints ``ready`` once imported (or
``main`` sets the ``ready`` event when started from a forkserver with these modules preloaded), so the test
can kill it at a random point of the actual work, not of Python's start-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from core.audit import HttpAuditSink
from core.dlq import DeadLetterQueue
from core.dlq_sweep import RetryPolicy, replay_file


def main(directory: str, url: str, batch_size: str, ready: Any = None) -> None:
    dlq = DeadLetterQueue(Path(directory))
    sink = HttpAuditSink(url)
    if ready is not None:
        ready.set()
    else:
        print("ready", flush=True)
    with dlq.claimer() as claimer:
        for claimed in claimer.recover() + claimer.claim():
            replay_file(
                claimer, claimed, sink, batch_size=int(batch_size), retry=RetryPolicy(2, base_delay_seconds=0.01)
            )
    sink.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
