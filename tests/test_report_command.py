"""`nurturekit report` and docs/reports.md, run as written on a demo database."""

from __future__ import annotations

import csv
import html.parser
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nurturekit.cli import main

DOC = Path(__file__).parent.parent / "docs" / "reports.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_page_s_commands_and_python_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = FENCE.findall(text)
    commands = [line for kind, body in blocks if kind == "sh" for line in body.splitlines()]
    assert [line.split()[1] for line in commands] == ["demo", "report"]
    for line in commands:
        argv = [sys.executable, "-m", "nurturekit", *shlex.split(line)[1:]]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    parser = _Text()
    parser.feed(page)
    assert "script" not in parser.tags and parser.tags.count("svg") == 4
    words = " ".join(parser.text)
    for heading in ("Funnel", "Hand-offs by owner", "SLA kept per month", "Monthly cohorts"):
        assert heading in words
    [code] = [body for kind, body in blocks if kind == "python"]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, "reports.md", "exec"), namespace)
    printed = capsys.readouterr().out
    assert printed.startswith("Funnel\n") and "Hand-offs" in printed
    with open(tmp_path / "steps.csv", encoding="utf-8") as steps:
        header = next(csv.reader(steps))
    assert header[:4] == ["scenario", "step", "template", "sent"]


def test_report_mistakes_are_said_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as usage:
        main(
            [
                "report",
                "--db",
                f"sqlite:///{tmp_path / 'n.db'}",
                "--out",
                str(out),
                "--since",
                "April",
            ]
        )
    assert usage.value.code == 2
    assert main(["report", "--db", "mysql://x", "--out", str(out)]) == 1
    assert capsys.readouterr().err.count("error:") == 2
    assert not out.exists()
    # An empty database is a report of empty tables, not an error.
    assert main(["report", "--db", f"sqlite:///{tmp_path / 'n.db'}", "--out", str(out)]) == 0
    assert "no data" in out.read_text(encoding="utf-8")
