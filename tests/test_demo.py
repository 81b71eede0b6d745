"""The demo: the bundled program on synthetic leads, as `nurturekit demo` runs it."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime

import pytest

from nurturekit.cli import main
from nurturekit.engine import RunReport


def demo(*argv: str) -> str:
    out = io.StringIO()
    assert main(["demo", *argv], out=out) == 0
    return out.getvalue()


def test_the_demo_prints_the_funnel_kpis_and_hand_offs() -> None:
    text = demo("--leads", "60", "--days", "30")
    assert text.splitlines()[0].startswith("60 leads, ")
    headings = [line.partition(":")[0] for line in text.splitlines() if ": " in line]
    for heading in ("funnel", "scenarios", "hand-offs"):
        assert heading in headings
    # Each heading says what its figures count: leads, enrolments or hand-offs.
    assert "funnel: leads that reached each stage (a lead counts once)" in text
    assert "scenarios: enrolments (a lead can be in several scenarios" in text
    assert "hand-offs: one per qualification" in text
    # The bundled program against the seeds' launch checklists, in one line.
    assert text.splitlines()[-1] == (
        "Launch readiness: ✓ 40 passed, ✗ 0 failed, ? 3 to confirm "
        "(nurturekit checklist PROGRAM.toml)"
    )
    assert "whitepaper follow-up:" in text
    assert "MQL → SQL" in text


def test_the_demo_is_reproducible_from_its_seed() -> None:
    assert demo("--leads", "30", "--days", "15") == demo("--leads", "30", "--days", "15")
    assert demo("--leads", "30", "--days", "15") != demo(
        "--leads", "30", "--days", "15", "--seed", "8"
    )


def test_python_m_nurturekit_demo_is_quiet_in_a_pipe() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "nurturekit", "demo", "--leads", "20", "--days", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no progress line when not on a terminal
    assert "funnel" in run.stdout


def test_each_tick_runs_everything_due_not_only_one_claim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With claims of two enrolments at a time, a tick must still run everything due: the
    demo's result is the one it gives with the default claim size."""
    from nurturekit.demo import run_demo
    from nurturekit.engine import Engine
    from nurturekit.programs import b2b_program

    whole = run_demo(b2b_program(), leads=80, days=20)
    claims: list[int] = []
    run_due = Engine.run_due

    def small_claims(self: Engine, now: datetime | None = None, limit: int = 500) -> RunReport:
        report = run_due(self, now, limit=2)
        claims.append(report.claimed)
        return report

    monkeypatch.setattr(Engine, "run_due", small_claims)
    assert run_demo(b2b_program(), leads=80, days=20) == whole
    assert max(claims) == 2  # some ticks had more due than one claim takes
