"""Run a child process that file permissions actually bind.

The suite often runs as root, whom a read-only folder does not stop: root's ``CAP_DAC_OVERRIDE`` ignores the
mode bits. Dropping that capability (and its relatives) from the child's bounding set with util-linux's
``setpriv`` makes the child an ordinary writer again, so "the folder is not writable" is tested for real.
"""

from __future__ import annotations

import os
import shutil

import pytest

_OVERRIDES = "-dac_override,-dac_read_search,-fowner"


def bound_by_permissions(argv: list[str]) -> list[str]:
    """``argv`` unchanged for an ordinary user; for root, prefixed so the child cannot override permissions."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: a read-only folder cannot stop root")
    return [setpriv, f"--bounding-set={_OVERRIDES}", *argv]
