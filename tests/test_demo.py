"""The demo: the bundled program on synthetic leads, as `nurturekit demo` runs it."""

from __future__ import annotations

import io
import subprocess
import sys

from nurturekit.cli import main


def demo(*argv: str) -> str:
    out = io.StringIO()
    assert main(["demo", *argv], out=out) == 0
    return out.getvalue()


def test_the_demo_prints_the_funnel_kpis_and_hand_offs() -> None:
    text = demo("--leads", "60", "--days", "30")
    assert text.splitlines()[0].startswith("60 leads, ")
    for heading in ("funnel", "scenarios", "hand-offs"):
        assert heading in text.splitlines()
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
