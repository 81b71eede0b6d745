"""The HTML report and its charts: one self-contained file that parses, loads nothing from
anywhere, shows every report's figures in its tables and its charts (read back from the SVG
text), and that headless Chromium renders into a screenshot that is not blank."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurturekit.errors import InvalidInput, NaiveDatetime
from nurturekit.programs import b2b_program
from nurturekit.reports import (
    Chart,
    Report,
    Section,
    cell_text,
    funnel,
    funnel_chart,
    histogram,
    html_document,
    html_report,
    kpi_bars,
    sla_chart,
    step_kpis,
)
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.synthetic import simulate

NOW = datetime(2026, 4, 30, 9, 0, tzinfo=timezone.utc)

FUNNEL = Report(
    "ファネル",
    ("stage", "entered", "conversion"),
    [
        {"stage": "認知", "entered": 1200, "conversion": None},
        {"stage": "興味関心", "entered": 640, "conversion": 0.5333},
        {"stage": "比較検討", "entered": 210, "conversion": 0.328125},
        {"stage": "MQL", "entered": 53, "conversion": 0.2524},
        {"stage": "SQL", "entered": 0, "conversion": 0.0},
    ],
    notes=["リードが各ステージに入った数（1リード1回）。"],
)
STEPS = Report(
    "Step KPIs",
    ("scenario", "template", "sent", "open_rate", "click_rate", "conversion_rate"),
    [
        {
            "scenario": "ホワイトペーパー",
            "template": "資料ダウンロードお礼",
            "sent": 500,
            "open_rate": 0.62,
            "click_rate": 0.18,
            "conversion_rate": 0.04,
        },
        {
            "scenario": "ホワイトペーパー",
            "template": "導入事例のご紹介",
            "sent": 480,
            "open_rate": 0.4125,
            "click_rate": 0.09,
            "conversion_rate": None,
        },
        {
            "scenario": "セミナー",
            "template": "<script>alert('x')</script> & お礼",
            "sent": 0,
            "open_rate": None,
            "click_rate": None,
            "conversion_rate": None,
        },
    ],
)
HANDOFFS = Report(
    "Hand-offs by owner",
    ("owner", "mqls", "sqls", "sla_kept"),
    [
        {"owner": "all", "mqls": 12, "sqls": 7, "sla_kept": 0.75},
        {"owner": "山田 太郎", "mqls": 12, "sqls": 7, "sla_kept": None},
    ],
)
SLA = Report(
    "SLA kept per month",
    ("period", "handoffs", "judged", "kept", "sla_kept"),
    [
        {"period": "2026-01", "handoffs": 10, "judged": 10, "kept": 9, "sla_kept": 0.9},
        {"period": "2026-02", "handoffs": 0, "judged": 0, "kept": 0, "sla_kept": None},
        {"period": "2026-03", "handoffs": 8, "judged": 8, "kept": 5, "sla_kept": 0.625},
        {"period": "2026-04", "handoffs": 12, "judged": 12, "kept": 12, "sla_kept": 1.0},
    ],
)
SCORES = Report(
    "Score distribution",
    ("from_score", "to_score", "leads"),
    [
        {"from_score": start, "to_score": start + 20, "leads": count}
        for start, count in zip(
            range(-20, 160, 20), [2, 40, 33, 28, 20, 0, 9, 1234, 5], strict=True
        )
    ],
)
COHORTS = Report("Monthly cohorts", ("cohort", "leads", "mql_rate"), [])
CHARTED = {
    "ファネル": FUNNEL,
    "Step KPIs": STEPS,
    "SLA kept per month": SLA,
    "Score distribution": SCORES,
}


def document() -> str:
    return html_document(
        "リードナーチャリング レポート",
        [
            Section("ファネル", FUNNEL, chart=funnel_chart(FUNNEL)),
            Section("メールの成果", STEPS, chart=kpi_bars(STEPS)),
            HANDOFFS,
            Section("SLA", SLA, chart=sla_chart(SLA)),
            Section("スコア分布", SCORES, chart=histogram(SCORES)),
            Section("月別コホート", COHORTS, chart=histogram(COHORTS)),
        ],
        generated_at=NOW,
        subtitle="2026年1月から",
        source="SQLiteStorage('nurture.db')",
    )


# ---------------------------------------------------------------------------- reading the page

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def all(self, tag: str, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.walk()
            if node.tag == tag
            and all(value in node.attrs.get(name, "").split() for name, value in attrs.items())
        ]

    def one(self, tag: str, **attrs: str) -> Node:
        (found,) = self.all(tag, **attrs)
        return found


class Page(HTMLParser):
    """The page as a tree, checking on the way that every element is closed in order."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.feed(text)
        self.close()
        assert [n.tag for n in self.stack] == ["#document"], "elements left open"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def table_cells(table: Node) -> tuple[str, list[str], list[list[str]]]:
    """A table's caption, header and body cells as the page shows them."""
    header = [th.text() for th in table.one("thead").all("th")]
    body = [[td.text() for td in tr.all("td")] for tr in table.one("tbody").all("tr")]
    return table.one("caption").text(), header, body


def drawn_values(svg: Node) -> dict[str, list[float | None]]:
    """The numbers a chart drew, by column, in the order drawn: ``1,200`` is 1200, ``53.3%``
    is 53.3 and ``–`` (no value) is None."""
    values: dict[str, list[float | None]] = {}
    for text in svg.all("text", **{"class": "nk-value"}):
        shown = text.text()
        number = None if shown == "–" else float(shown.rstrip("%").replace(",", ""))
        values.setdefault(text.attrs["data-column"], []).append(number)
    return values


def chart_title(svg: Node) -> str:
    """The chart's own ``<title>``, its first child (the bars have titles of their own)."""
    first = next(child for child in svg.children if isinstance(child, Node))
    assert first.tag == "title"
    return first.text()


def bar_titles(svg: Node) -> list[str]:
    """The ``<title>`` of every bar, in the order drawn."""
    return [bar.one("title").text() for bar in svg.all("rect", **{"class": "nk-bar"})]


def as_drawn(value: Any, *, percent: bool) -> float | None:
    """A report's figure as a chart draws it: counts whole, rates in percent to 0.1."""
    if value is None:
        return None
    return round(value * 100, 1) if percent else float(value)


# ---------------------------------------------------------------------------- the document


def test_the_page_parses_and_loads_nothing_from_anywhere() -> None:
    page = Page(document()).root
    tags = {node.tag for node in page.walk()}
    assert "script" not in tags
    assert not tags & {"link", "iframe", "object", "embed", "img", "audio", "video", "base"}
    for node in page.walk():
        for name, value in node.attrs.items():
            assert not name.startswith("on"), f"<{node.tag} {name}>: an event handler"
            if name in {"src", "href", "xlink:href", "action", "srcset"}:
                lowered = value.strip().lower()
                assert not lowered.startswith(("http:", "https:", "//")), (node.tag, value)
                assert lowered.startswith("#"), f"<{node.tag} {name}={value!r}>: not on the page"
    (style,) = page.all("style")
    css = style.text().lower()
    assert "@font-face" not in css and "@import" not in css and "url(" not in css
    assert "http" not in css


def test_the_page_is_japanese_utf8_and_prints_one_section_a_page() -> None:
    text = document()
    page = Page(text).root
    assert text.startswith("<!DOCTYPE html>")
    assert page.one("html").attrs["lang"] == "ja"
    head = page.one("head")
    first = next(child for child in head.children if isinstance(child, Node))
    assert first.tag == "meta" and first.attrs["charset"].lower() == "utf-8"
    assert head.one("title").text() == "リードナーチャリング レポート"
    css = page.one("style").text()
    for font in ("Hiragino Sans", "Noto Sans CJK JP", "Yu Gothic", "sans-serif"):
        assert font in css
    print_css = css[css.index("@media print") :]
    assert "section { break-before: page; }" in print_css
    assert "border: 1px solid" in css
    # the sections, in order, each a heading linked from the contents
    sections = page.all("section")
    headings = [s.one("h2").text() for s in sections]
    assert headings == [
        "ファネル",
        "メールの成果",
        "Hand-offs by owner",
        "SLA",
        "スコア分布",
        "月別コホート",
    ]
    links = [a.attrs["href"] for a in page.one("nav").all("a")]
    assert links == [f"#{s.attrs['id']}" for s in sections]


def test_the_footer_says_when_and_from_what() -> None:
    footer = Page(document()).root.one("footer").text()
    assert "2026-04-30T09:00" in footer
    assert "SQLiteStorage('nurture.db')" in footer
    assert "nurturekit" in footer


def test_every_table_shows_its_reports_rows() -> None:
    page = Page(document()).root
    tables = {
        caption: (header, body) for caption, header, body in map(table_cells, page.all("table"))
    }
    for report in (FUNNEL, STEPS, HANDOFFS, SLA, SCORES, COHORTS):
        header, body = tables[report.title]
        assert header == list(report.columns)
        assert body == [[cell_text(row[c]) for c in report.columns] for row in report.rows()]
    assert "リードが各ステージに入った数（1リード1回）。" in page.text()


def test_every_chart_draws_its_reports_figures() -> None:
    page = Page(document()).root
    charts = {chart_title(svg): svg for svg in page.all("svg")}
    assert set(charts) == {*CHARTED, "Monthly cohorts"}
    assert drawn_values(charts["ファネル"]) == {
        "entered": [as_drawn(r["entered"], percent=False) for r in FUNNEL.rows()],
        "conversion": [as_drawn(r["conversion"], percent=True) for r in FUNNEL.rows()],
    }
    rates = ("open_rate", "click_rate", "conversion_rate")
    kpis = drawn_values(charts["Step KPIs"])
    assert kpis == {c: [as_drawn(r[c], percent=True) for r in STEPS.rows()] for c in rates}
    assert drawn_values(charts["SLA kept per month"]) == {
        "sla_kept": [as_drawn(r["sla_kept"], percent=True) for r in SLA.rows()]
    }
    assert drawn_values(charts["Score distribution"]) == {
        "leads": [float(r["leads"]) for r in SCORES.rows()]
    }


def test_every_bar_has_a_title_with_its_exact_value() -> None:
    charts = {chart_title(svg): svg for svg in Page(document()).root.all("svg")}
    funnel_bars = bar_titles(charts["ファネル"])
    assert len(funnel_bars) == len(FUNNEL.rows())
    for title, row in zip(funnel_bars, FUNNEL.rows(), strict=True):
        assert title.startswith(f"{row['stage']} — entered: {row['entered']}, conversion: ")
    assert funnel_bars[0] == "認知 — entered: 1200, conversion: no value"
    assert "比較検討 — entered: 210, conversion: 0.328125 (32.8125%)" in funnel_bars
    # a missing rate draws no bar: only the values there are have one
    sla_bars = [b.one("title").text() for b in charts["SLA kept per month"].all("rect")]
    assert sla_bars == [
        "2026-01 — sla kept: 0.9 (90%)",
        "2026-03 — sla kept: 0.625 (62.5%)",
        "2026-04 — sla kept: 1.0 (100%)",
    ]
    kpi_titles = bar_titles(charts["Step KPIs"])
    assert len(kpi_titles) == sum(
        r[c] is not None
        for r in STEPS.rows()
        for c in ("open_rate", "click_rate", "conversion_rate")
    )
    assert "ホワイトペーパー / 資料ダウンロードお礼 — open rate: 0.62 (62%)" in kpi_titles
    score_titles = bar_titles(charts["Score distribution"])
    assert score_titles[0] == "-20–0 — leads: 2"
    assert "120–140 — leads: 1234" in score_titles


def test_text_is_escaped_not_markup() -> None:
    """A template named like markup is shown as the text it is, in the table and the chart."""
    page = Page(document()).root
    assert "script" not in {node.tag for node in page.walk()}
    shown = "<script>alert('x')</script> & お礼"
    assert any(td.text() == shown for td in page.all("td"))
    (kpi,) = [svg for svg in page.all("svg") if chart_title(svg) == "Step KPIs"]
    assert any(t.text() == f"セミナー / {shown}" for t in kpi.all("text"))


def test_an_empty_report_charts_no_data() -> None:
    for draw in (funnel_chart, histogram, kpi_bars, sla_chart):
        chart = draw(COHORTS)
        svg = Page(chart.svg).root
        assert [t.text() for t in svg.all("text", **{"class": "nk-empty"})] == ["no data"]
        assert not svg.all("rect", **{"class": "nk-bar"})
        assert chart.title == "Monthly cohorts"


def test_charts_are_standalone_svg_with_japanese_fonts() -> None:
    chart = funnel_chart(FUNNEL)
    assert isinstance(chart, Chart)
    assert repr(chart) == "<Chart 'ファネル'>"
    assert str(chart) == chart.svg == chart._repr_svg_() == chart._repr_html_()
    root = ElementTree.fromstring(chart.svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "100%"
    assert root.get("viewBox", "").startswith("0 0 720 ")
    for font in ("Hiragino Sans", "Noto Sans CJK JP", "Yu Gothic", "sans-serif"):
        assert font in root.get("font-family", "")
    assert "http" not in chart.svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_control_characters_do_not_break_the_svg() -> None:
    report = Report("bell\x07 <&>", ("stage", "entered"), [{"stage": "a\x00b", "entered": 1}])
    root = ElementTree.fromstring(funnel_chart(report).svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "bell\ufffd <&>" in texts and "a\ufffdb" in texts


def test_a_column_that_is_not_there_is_named_with_the_reports_columns() -> None:
    with pytest.raises(InvalidInput, match=r"funnel_chart\(value='leads'\).*'stage', 'entered'"):
        funnel_chart(FUNNEL, value="leads")
    with pytest.raises(InvalidInput, match=r"kpi_bars\(rates='bounce_rate'\)"):
        kpi_bars(STEPS, rates=["open_rate", "bounce_rate"])
    words = Report("Words", ("word",), [{"word": "こんにちは"}])
    with pytest.raises(InvalidInput, match="histogram"):
        histogram(words)


def test_generated_at_must_say_its_time_zone() -> None:
    with pytest.raises(NaiveDatetime):
        html_document("x", [], generated_at=datetime(2026, 4, 30, 9, 0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.one_of(st.none(), st.integers(min_value=0, max_value=10**7)),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_any_counts_are_drawn_as_they_are(rows: list[tuple[str, int | None]]) -> None:
    report = Report("t", ("label", "count"), [{"label": a, "count": n} for a, n in rows])
    for draw in (funnel_chart, histogram):
        svg = draw(report).svg
        ElementTree.fromstring(svg)  # well-formed, whatever the labels hold
        drawn = drawn_values(Page(svg).root)
        assert drawn == {"count": [None if n is None else float(n) for _, n in rows]}


# ---------------------------------------------------------------------------- the real reports


def test_the_standard_report_of_a_simulated_store() -> None:
    storage = InMemoryStorage()
    program = b2b_program()
    run = simulate(program, storage, leads=40, days=30, seed=3)
    since = run.now - timedelta(days=20)
    page = Page(html_report(storage, program, now=run.now, since=since)).root
    headings = [h.text() for h in page.all("h2")]
    assert headings == [
        "Funnel",
        "Scenarios and mail steps",
        "Hand-offs by owner",
        "SLA kept per month",
        "Score distribution",
        "Monthly cohorts",
    ]
    assert len(page.all("svg")) == 4
    tables = {caption: body for caption, _, body in map(table_cells, page.all("table"))}
    stages = funnel(storage, program, since=since)
    assert tables["Funnel"] == [[cell_text(r[c]) for c in stages.columns] for r in stages.rows()]
    (drawn,) = [svg for svg in page.all("svg") if chart_title(svg) == "Funnel"]
    assert drawn_values(drawn)["entered"] == [float(r["entered"]) for r in stages.rows()]
    steps = step_kpis(storage, since=since, program=program)
    assert steps.rows(), "the simulation sent mail"
    (kpis,) = [svg for svg in page.all("svg") if chart_title(svg) == steps.title]
    assert drawn_values(kpis)["open_rate"] == [
        as_drawn(r["open_rate"], percent=True) for r in steps.rows()
    ]
    assert "InMemoryStorage" in page.one("footer").text()


# ---------------------------------------------------------------------------- the screenshot

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def test_headless_chromium_draws_the_page(tmp_path: Path) -> None:
    """The page as a browser draws it: a screenshot with ink on it, in several colours, the
    bars of the charts among them."""
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        pytest.fail(
            f"no browser found (looked for {', '.join(BROWSERS)}): this test needs headless "
            "Chromium; .ci/run installs Debian's chromium (apt-get install chromium)"
        )
    page = tmp_path / "report.html"
    page.write_text(document(), encoding="utf-8")
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            page.as_uri(),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.is_file(), f"{browser} wrote no screenshot (exit {done.returncode}): {done.stderr}"
    width, height, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    colours = Counter(pixels)
    ink = sum(count for colour, count in colours.items() if colour != (255, 255, 255))
    assert ink > 0.01 * width * height, f"{ink} of {width * height} pixels are not white"
    assert len(colours) >= 8, f"only {len(colours)} colours"
    # the funnel's bars and the KPI chart's click-rate bars, in their own colours
    assert colours[(0x2F, 0x6D, 0xB5)] > 5_000
    assert colours[(0xE0, 0x7B, 0x28)] > 500


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the pixels (RGB, row by row) of an 8-bit RGB or RGBA PNG that is not
    interlaced, with the standard library only; alpha is dropped."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length, kind) = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type)
    size = 3 if colour_type == 2 else 4
    stride = width * size
    raw = zlib.decompress(b"".join(chunks))
    previous = bytes(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        line = unfilter(raw[start], raw[start + 1 : start + 1 + stride], previous, size)
        pixels += zip(line[0::size], line[1::size], line[2::size], strict=True)
        previous = line
    return width, height, pixels


def unfilter(kind: int, line: bytes, above: bytes, size: int) -> bytes:
    """Undo one scanline's PNG filter (0 none, 1 sub, 2 up, 3 average, 4 Paeth)."""
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, above, strict=True))
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - size] if i >= size else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + (left + above[i]) // 2) & 0xFF
        elif kind == 4:
            up, corner = above[i], above[i - size] if i >= size else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            nearest = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            out[i] = (out[i] + nearest) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
    return bytes(out)


def encode_png(width: int, rows: list[bytes], colour_type: int) -> bytes:
    """A PNG whose scanlines use the five filters in turn (the decoder's own test)."""
    size = 3 if colour_type == 2 else 4
    out, above = bytearray(), bytes(width * size)
    for y, line in enumerate(rows):
        kind = y % 5
        filtered = bytearray(line)
        for i in range(len(line)):
            left = line[i - size] if i >= size else 0
            corner = above[i - size] if i >= size else 0
            p = left + above[i] - corner
            pa, pb, pc = abs(p - left), abs(p - above[i]), abs(p - corner)
            paeth = left if pa <= pb and pa <= pc else above[i] if pb <= pc else corner
            guess = (0, left, above[i], (left + above[i]) // 2, paeth)[kind]
            filtered[i] = (line[i] - guess) & 0xFF
        out += bytes([kind]) + filtered
        above = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("colour_type", [2, 6])
def test_the_png_decoder_undoes_every_filter(colour_type: int) -> None:
    size = 3 if colour_type == 2 else 4
    rows = [bytes((x * 37 + y * 101 + x * y) % 256 for x in range(7 * size)) for y in range(11)]
    width, height, pixels = decode_png(encode_png(7, rows, colour_type))
    assert (width, height) == (7, 11)
    expected = [tuple(row[i : i + 3]) for row in rows for i in range(0, len(row), size)]
    assert pixels == expected
