"""The README's promises, checked as a new user would meet them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's ``bash`` blocks under "Two commands" (one per block, in order)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_readme_has_the_two_commands_and_ci_runs_the_test_one() -> None:
    demo, tests = readme_commands()
    assert demo == "uv run oms-audit demo"
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("uv") is None, reason="needs git and uv")
def test_demo_command_works_in_a_fresh_clone(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TERMINUS_", "OMS_AUDIT_", "VIRTUAL_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    env["OMS_AUDIT_RUNNER_IDLE_SECONDS"] = "0"  # leave no warm runner behind
    env["COLUMNS"] = "250"  # keep the report path on one line of the summary table
    demo = readme_commands()[0].split()
    run = subprocess.run(demo, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reports = sorted((clone / "demo-reports").glob("migration_report_audit_fields_*.json"))
    assert [json.loads(p.read_text())["mode"] for p in reports] == ["dry_run", "execute"]
    final = json.loads(reports[-1].read_text())
    assert final["status"] == "succeeded" and final["validation"]["ok"] is True
    assert "succeeded" in run.stdout and reports[-1].name in run.stdout


def test_sandbox_command_serves_the_demo_ontology() -> None:
    script = Path(sys.executable).with_name("oms-audit")
    process = subprocess.Popen(
        [str(script), "sandbox", "--port", "0", "--seed", "demo"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        reply = httpx.get(f"{url.group(0)}/api/document/admin/oms?type=ObjectType&as_list=true", auth=("admin", "root"))
        assert reply.status_code == 200 and len(reply.json()) > 0
    finally:
        process.terminate()
        process.wait(10)
