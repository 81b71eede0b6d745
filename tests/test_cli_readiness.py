"""nurturekit checklist, graph --program and validate --strict: the launch checklists and the
program's flowchart from the command line."""

from __future__ import annotations

import html.parser
import io
import json
from pathlib import Path

import pytest

from nurturekit.cli import main
from nurturekit.programs import bundled_program_path


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


BUNDLED = str(bundled_program_path())


def without_sla(tmp_path: Path) -> str:
    """The bundled program without its hand-off (so without an SLA): a program that fails."""
    text = bundled_program_path().read_text(encoding="utf-8")
    start = text.index("[handoff]")
    end = text.index("\n[plan]") if "\n[plan]" in text[start:] else len(text)
    path = tmp_path / "no-sla.toml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return str(path)


def test_the_bundled_program_passes_every_item_it_can_show(tmp_path: Path) -> None:
    code, out = run_cli("checklist", BUNDLED, "--lang", "en")
    assert code == 0
    assert out.splitlines()[0] == "Launch readiness: ✓ 40 passed, ✗ 0 failed, ? 3 to confirm"
    assert "? 004-03 The MQL/SQL definitions are agreed with sales" in out  # people must say so
    assert "? 004-03 MQL/SQLの定義を営業と合意している" in run_cli("checklist", BUNDLED)[1]
    data = json.loads(run_cli("checklist", BUNDLED, "--format", "json")[1])
    assert data["summary"]["failed"] == 0 and len(data["items"]) == 43
    page = run_cli("checklist", BUNDLED, "--format", "html")[1]
    parser = html.parser.HTMLParser()
    parser.feed(page)
    assert "<script" not in page and "004-14" in page


def test_a_program_without_an_sla_fails_its_items_and_exit_1(tmp_path: Path) -> None:
    program = without_sla(tmp_path)
    code, out = run_cli("checklist", program)
    assert code == 1
    assert "✗ 004-04 リードの引き渡しルール(SLA)を設定している" in out
    code, out = run_cli("validate", program, "--strict")
    assert code == 1
    assert "readiness: ✗ 004-04" in out and "failed readiness items" in out
    assert run_cli("validate", program)[0] == 0  # not strict: a plan, not a mistake


def test_with_db_the_test_sends_are_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'n.db'}"
    code, out = run_cli("checklist", BUNDLED, "--db", db, "--lang", "en")
    assert code == 1  # nothing test-sent yet
    assert "✗ 004-14" in out
    program = tmp_path / "mine.toml"
    assert run_cli("init", str(program))[0] == 0
    names = json.loads(run_cli("checklist", str(program), "--format", "json")[1])
    assert names["summary"]["total"] == 43
    from nurturekit.programs import b2b_program

    sent = {
        s.template for sc in b2b_program().scenarios for s in sc.steps if hasattr(s, "template")
    }
    for template in sorted(sent):
        code, _ = run_cli(
            "test-send",
            template,
            "--to",
            "qa@example.co.jp",
            "--program",
            str(program),
            "--eml",
            str(tmp_path / "mails"),
            "--db",
            db,
        )
        assert code == 0
    code, out = run_cli("checklist", str(program), "--db", db, "--lang", "en")
    assert code == 0 and "✓ 004-14" in out
    capsys.readouterr()


def test_graph_program_draws_the_seed_flowchart() -> None:
    code, out = run_cli("graph", BUNDLED, "--program")
    assert code == 0 and out.startswith("flowchart TD")
    assert "24時間以内に初回接触" in out and "リード登録" in out
    with pytest.raises(SystemExit) as usage:
        main(["graph", BUNDLED, "--program", "--scenario", "x"])
    assert usage.value.code == 2


def test_the_readiness_page_lists_every_item_and_its_snippet_reads() -> None:
    import re

    from nurturekit.program_file import loads_program
    from nurturekit.readiness import CHECKLIST, ItemStatus, check

    page = (Path(__file__).parent.parent / "docs" / "readiness.md").read_text(encoding="utf-8")
    for item in CHECKLIST:
        assert f"| {item.id} | {item.ja}<br>{item.en} |" in page
    [snippet] = [
        b for k, b in re.findall(r"^```(\w+)\n(.*?)^```", page, re.M | re.S) if k == "toml"
    ]
    text = bundled_program_path().read_text(encoding="utf-8")
    # The bundled program's own [plan] (its last part) is replaced by the page's.
    program = loads_program(text[: text.index("\n[plan]")] + "\n" + snippet)
    readiness = check(program)
    assert readiness.item("004-03").status is ItemStatus.PASSED
    assert readiness.item("004-03").confirmed is not None
    assert readiness.item("004-01").status is ItemStatus.PASSED  # kpis with numbers
