"""Reports as one self-contained HTML file: tables and inline SVG charts, no script, no external
file, no web font; it opens offline, can be mailed and archived, and prints one section a page.

>>> from datetime import datetime, timezone
>>> from nurturekit.reports import Report
>>> from nurturekit.reports.charts import funnel_chart
>>> from nurturekit.reports.html import Section, html_document
>>> funnel = Report("Funnel", ("stage", "entered"), [{"stage": "興味関心", "entered": 12}])
>>> page = html_document(
...     "Nurture report",
...     [Section("Funnel", [funnel], chart=funnel_chart(funnel))],
...     generated_at=datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc),
... )
>>> page.startswith("<!DOCTYPE html>") and "<script" not in page and "興味関心" in page
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from nurturekit._time import aware_utc, optional_aware_utc
from nurturekit.ports import Storage
from nurturekit.program import Program
from nurturekit.reports._cohorts import monthly_cohorts
from nurturekit.reports._funnel import funnel
from nurturekit.reports._handoffs import handoffs, sla_over_time
from nurturekit.reports._kpis import scenario_kpis, step_kpis
from nurturekit.reports._scores import score_distribution
from nurturekit.reports._table import Report
from nurturekit.reports.charts import (
    FONT_FAMILY,
    Chart,
    funnel_chart,
    histogram,
    kpi_bars,
    sla_chart,
)

__all__ = ["Section", "html_document", "html_report"]


def _reports(value: Report | Iterable[Report]) -> tuple[Report, ...]:
    return (value,) if isinstance(value, Report) else tuple(value)


@attrs.frozen
class Section:
    """One part of an HTML report: a ``heading``, then the ``chart`` (if any), then its
    ``reports`` as tables, each with its notes. ``reports`` is one report or several."""

    heading: str
    reports: tuple[Report, ...] = attrs.field(default=(), converter=_reports)
    chart: Chart | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.heading!r}: {len(self.reports)} tables>"


_STYLE = """
:root { color-scheme: light; }
body { font-family: FONTS; color: #1a1a1a; background: #ffffff; margin: 0 auto;
  max-width: 60rem; padding: 1.5rem; line-height: 1.5; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2.5rem 0 .75rem; padding-bottom: .25rem;
  border-bottom: 2px solid #1a1a1a; break-after: avoid; }
.nk-subtitle { font-size: 1.05rem; margin: 0 0 .25rem; }
.nk-generated, .nk-note, footer { color: #444444; font-size: .85rem; }
nav ol { margin: .5rem 0 0; padding-left: 1.5rem; }
a { color: #1f4f8a; }
figure { margin: 0 0 1rem; break-inside: avoid; }
figure svg { display: block; width: 100%; height: auto; max-width: 48rem; }
.nk-table { overflow-x: auto; margin: 0 0 1rem; }
table.nk-report { border-collapse: collapse; margin: .5rem 0 .25rem; font-size: .9rem; }
table.nk-report caption { text-align: left; font-weight: bold; padding: .25rem 0; }
table.nk-report th, table.nk-report td { border: 1px solid #666666; padding: .2rem .5rem;
  vertical-align: top; }
table.nk-report th { font-weight: bold; text-align: left; border-bottom: 2px solid #1a1a1a; }
table.nk-report tbody tr:nth-child(even) { background: #f4f6f8; }
.nk-note { margin: .25rem 0; }
footer { margin-top: 3rem; padding-top: .5rem; border-top: 1px solid #666666; }
@page { size: A4; margin: 15mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
  h2 { margin-top: 0; }
  a { color: inherit; text-decoration: none; }
  .nk-table { overflow: visible; }
  table.nk-report { font-size: 8pt; }
  table.nk-report th, table.nk-report td { padding: .1rem .25rem; }
  table.nk-report th { overflow-wrap: anywhere; }
  table.nk-report thead { display: table-header-group; }
  table.nk-report tr { break-inside: avoid; }
  table.nk-report tbody tr:nth-child(even) { background: none; }
  footer { break-before: avoid; }
}
""".replace("FONTS", FONT_FAMILY)


def html_document(
    title: str,
    sections: Iterable[Section | Report],
    *,
    generated_at: datetime,
    subtitle: str | None = None,
    source: str | None = None,
) -> str:
    """One HTML5 page (UTF-8, ``lang="ja"``) of ``sections``: a title, a list of the sections
    linked to them, then each section (a bare :class:`Report` is a section of its own, headed
    by its title) and a footer saying when (``generated_at``, an aware datetime, shown as given)
    and from what (``source``, e.g. the store) it was generated.

    The page holds everything it shows: its style is inline, its charts are inline SVG, and
    it loads nothing (no script, font, image or style sheet from anywhere). On paper each
    section starts a page, tables repeat their header row on every page, and nothing needs a
    background colour to be read.
    """
    # Read when called: the package's __init__ sets __version__ after its imports.
    from nurturekit import __version__

    aware_utc(generated_at, "html_document(generated_at)")
    parts = [Section(s.title, [s]) if isinstance(s, Report) else s for s in sections]
    out = [
        "<!DOCTYPE html>",
        '<html lang="ja">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="nurturekit {_escape(__version__)}">',
        f"<title>{_escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_escape(title)}</h1>",
    ]
    if subtitle:
        out.append(f'<p class="nk-subtitle">{_escape(subtitle)}</p>')
    stamp = _escape(generated_at.isoformat(timespec="minutes"))
    out.append(f'<p class="nk-generated">Generated <time>{stamp}</time></p>')
    out.append("</header>")
    if parts:
        out.append('<nav aria-label="Contents"><ol>')
        out += [
            f'<li><a href="#nk-section-{number}">{_escape(part.heading)}</a></li>'
            for number, part in enumerate(parts, 1)
        ]
        out.append("</ol></nav>")
    out.append("<main>")
    for number, part in enumerate(parts, 1):
        out += _section(part, number)
    out.append("</main>")
    made_from = f" from {_escape(source)}" if source else ""
    out.append(
        f'<footer>Generated by nurturekit {_escape(__version__)} on <time datetime="'
        f'{_escape(generated_at.isoformat())}">{stamp}</time>{made_from}.</footer>'
    )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def html_report(
    storage: Storage, program: Program, *, now: datetime, since: datetime | None = None
) -> str:
    """The standard report of a store as one HTML page (:func:`html_document`), as of ``now``:

    1. Funnel: :func:`~nurturekit.reports.funnel` and its bars.
    2. Scenarios and mail steps: :func:`~nurturekit.reports.step_kpis` (open, click and
       conversion rate of each step, charted) and :func:`~nurturekit.reports.scenario_kpis`.
    3. Hand-offs by owner: :func:`~nurturekit.reports.handoffs`.
    4. SLA kept per month: :func:`~nurturekit.reports.sla_over_time` and its bars.
    5. Score distribution: :func:`~nurturekit.reports.score_distribution` and its histogram.
    6. Monthly cohorts: :func:`~nurturekit.reports.monthly_cohorts`.

    ``since`` (an aware datetime) keeps what happened from then on in the funnel, the KPIs,
    the hand-offs and the SLA; scores are those of ``now`` and cohorts cover every month. It
    reads the store and writes nothing; ``nurturekit report`` writes the page to a file.

    >>> from datetime import datetime, timezone
    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    >>> page = html_report(InMemoryStorage(), b2b_program(), now=now)
    >>> page.count("<section"), page.count("<svg")
    (6, 4)
    """
    aware_utc(now, "html_report(now)")
    optional_aware_utc(since, "html_report(since)")
    steps = step_kpis(storage, since=since, program=program)
    sla = sla_over_time(storage, now=now, since=since)
    scores = score_distribution(storage, program, now=now)
    stages = funnel(storage, program, since=since)
    sections = [
        Section(
            "Funnel",
            stages,
            chart=funnel_chart(stages, label="stage", value="entered", rate="conversion"),
        ),
        Section(
            "Scenarios and mail steps",
            [steps, scenario_kpis(storage, since=since, program=program)],
            chart=kpi_bars(
                steps,
                label=("scenario", "template"),
                rates=("open_rate", "click_rate", "conversion_rate"),
            ),
        ),
        Section("Hand-offs by owner", handoffs(storage, now=now, since=since)),
        Section("SLA kept per month", sla, chart=sla_chart(sla, label="period", value="sla_kept")),
        Section(
            "Score distribution",
            scores,
            chart=histogram(scores, label=("from_score", "to_score"), value="leads"),
        ),
        Section("Monthly cohorts", monthly_cohorts(storage, now=now)),
    ]
    start = "the beginning" if since is None else since.isoformat(timespec="minutes")
    return html_document(
        "Lead nurturing report",
        sections,
        generated_at=now,
        subtitle=f"From {start} to {now.isoformat(timespec='minutes')}",
        source=f"{_describe(storage)}, the program of {program.sender.name}",
    )


def _describe(storage: Storage) -> str:
    """The store as its ``repr`` says it (``SQLiteStorage('nurture.db')``), or its class name
    when its ``repr`` is Python's default, which says nothing but an address."""
    if type(storage).__repr__ is object.__repr__:
        return type(storage).__name__
    return repr(storage)


def _section(part: Section, number: int) -> Sequence[str]:
    out = [f'<section id="nk-section-{number}">', f"<h2>{_escape(part.heading)}</h2>"]
    if part.chart is not None:
        out.append(f'<figure class="nk-figure">\n{part.chart.svg}\n</figure>')
    for report in part.reports:
        out.append(f'<div class="nk-table">\n{report.html_table()}</div>')
    out.append("</section>")
    return out


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
