"""Every script in examples/ runs, as a user would run it, and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXPECTED = {
    "score_a_lead.py": "score 115 (fit 45, engagement 70), level MQL, hot",
    "whitepaper_follow_up.py": "無料個別相談のご案内",
    "custom_mailer.py": "sent 1, bounced 1",
    "explore_records.py": "+30 pricing page visit — page_view at 2026-04-06 02:00 UTC",
    "seminar_branches.py": "archive     【アーカイブ配信のご案内】",
}


def test_every_example_is_listed_here() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_example_runs(name: str) -> None:
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert EXPECTED[name] in run.stdout
