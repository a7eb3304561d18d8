"""The DLQ alerting rules pass their ``promtool test rules`` unit tests, and say what the sweep says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.monitoring.audit_metrics import AlertManager

RULES_DIR = Path(__file__).resolve().parents[2] / "deployments" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: .ci/run installs Debian's prometheus")


def promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "oms_audit_dlq_rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "oms_audit_dlq_rules_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    shutil.copy(RULES_DIR / "oms_audit_dlq_rules.yml", tmp_path)
    broken = (RULES_DIR / "oms_audit_dlq_rules_test.yml").read_text().replace("- eval_time: 12m", "- eval_time: 30m")
    (tmp_path / "t.yml").write_text(broken)
    assert promtool("test", "rules", "t.yml", cwd=tmp_path).returncode != 0


def test_rule_thresholds_are_the_guides_and_the_alert_managers() -> None:
    rules = {
        r["alert"]: r for r in yaml.safe_load((RULES_DIR / "oms_audit_dlq_rules.yml").read_text())["groups"][0]["rules"]
    }
    manager = AlertManager()
    assert rules["OmsAuditDlqTooLarge"]["expr"].endswith(f"> {manager.alert_threshold}")
    assert rules["OmsAuditDlqTooOld"]["expr"].endswith(f"> {manager.age_threshold_seconds:g}")
    assert set(rules) == {
        "OmsAuditDlqTooLarge",
        "OmsAuditDlqTooOld",
        "OmsAuditDlqSweepNotSucceeding",
        "OmsAuditDlqSweepSilent",
        "OmsAuditDlqSweepNeverPushed",
    }
