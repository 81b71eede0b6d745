"""Reports from any store: the funnel, scenario and step KPIs, hand-offs and the SLA, the
score distribution and monthly cohorts, as tables and charts, in a notebook or one HTML file.

Every report is a :class:`Report`: a title, documented column names that stay stable, and
rows of plain values (``rows()``), with ``to_csv(path)``, ``to_pandas()`` (pandas is the
``pandas`` extra), ``str()`` (a text table) and ``_repr_html_`` (an HTML table a notebook
shows). Its ``notes`` say what the figures count. Reports read the store through the
:class:`~nurturekit.ports.Storage` API (memory, SQLite and PostgreSQL alike, rows in the same
order on each), each thing once; they write nothing and never read the clock: ``now`` is given.
Rates are floats in [0, 1], or ``None`` when there is nothing to divide by.

    from nurturekit import reports

    reports.funnel(storage, program).to_pandas()
    reports.step_kpis(storage)            # machine opens left out unless machine_opens=True
    print(reports.handoffs(storage, now=now))

The reports and their columns (each function's docstring says what every figure counts):

- :func:`funnel` ``(storage, program, *, since=None, until=None, cohort=None)``: stage,
  entered, conversion, median_days_in_stage, p90_days_in_stage; a row per stage of the
  program's stage machine, then MQL and SQL.
- :func:`scenario_kpis` ``(storage, *, since=None, until=None, program=None)``: scenario,
  enrolled, running, converted, exited, completed, failed, conversion_rate.
- :func:`step_kpis` ``(storage, *, since=None, until=None, machine_opens=False,
  program=None)``: scenario, step, template, sent, delivered, opened, clicked, converted,
  unsubscribed, bounced, open_rate, click_rate, conversion_rate, unsubscribe_rate,
  bounce_rate.
- :func:`handoffs` ``(storage, *, now, since=None, until=None)``: owner, mqls, sqls,
  mql_to_sql, sla_kept, first_contact_median_hours, first_contact_p90_hours, open,
  contacted, accepted, recycled, disqualified; a row "all", then one per owner.
- :func:`sla_over_time` ``(storage, *, now, period="month", since=None, until=None)``:
  period, handoffs, judged, kept, sla_kept; per month ("2026-04") or ISO week ("2026-W14").
- :func:`score_distribution` ``(storage, program, *, now, width=20)``: from_score, to_score,
  leads.
- :func:`lead_scores` ``(storage, program, *, now)``: lead_id, email, company, total, fit,
  engagement, temperature, levels, stage; highest total first.
- :func:`monthly_cohorts` ``(storage, *, now)``: cohort, leads, mqls, sqls, mql_rate,
  sql_rate, median_days_to_mql.
"""

from __future__ import annotations

from nurturekit.reports._cohorts import monthly_cohorts
from nurturekit.reports._funnel import funnel
from nurturekit.reports._handoffs import handoffs, sla_over_time
from nurturekit.reports._kpis import scenario_kpis, step_kpis
from nurturekit.reports._scores import lead_scores, score_distribution
from nurturekit.reports._table import MissingExtra, Report, cell_text
from nurturekit.reports.charts import Chart, funnel_chart, histogram, kpi_bars, sla_chart
from nurturekit.reports.html import Section, html_document, html_report

__all__ = [
    "Chart",
    "MissingExtra",
    "Report",
    "Section",
    "cell_text",
    "funnel",
    "funnel_chart",
    "handoffs",
    "histogram",
    "html_document",
    "html_report",
    "kpi_bars",
    "lead_scores",
    "monthly_cohorts",
    "scenario_kpis",
    "score_distribution",
    "sla_chart",
    "sla_over_time",
    "step_kpis",
]
