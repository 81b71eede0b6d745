"""Charts of the reports as inline SVG: drawn from a :class:`Report`'s rows with no script, no
external file and no web font, so they show in a notebook, in one HTML file, offline and on paper.

Every number a chart draws is also a ``<text>`` in the SVG (class ``nk-value``, one per value,
in the report's row order; ``–`` for a missing value), and every bar has a ``<title>`` with
the exact value, which a browser shows on hover. Rates are fractions (``0.25`` is drawn as
``25.0%``), as in every report.

>>> from nurturekit.reports import Report
>>> from nurturekit.reports.charts import funnel_chart
>>> report = Report(
...     "Funnel",
...     ("stage", "leads", "conversion"),
...     [{"stage": "興味関心", "leads": 120, "conversion": None},
...      {"stage": "MQL", "leads": 30, "conversion": 0.25}],
... )
>>> chart = funnel_chart(report)
>>> chart
<Chart 'Funnel'>
>>> "25.0%" in str(chart) and "興味関心" in str(chart)
True
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Collection, Sequence
from typing import Any

import attrs

from nurturekit.errors import InvalidInput
from nurturekit.reports._table import Report, cell_text

__all__ = ["FONT_FAMILY", "Chart", "funnel_chart", "histogram", "kpi_bars", "sla_chart"]

#: The font stack of charts and of the HTML report: the system fonts that carry Japanese on
#: macOS, Linux and Windows, then any sans-serif. No web font is ever loaded.
FONT_FAMILY = (
    "'Hiragino Sans', 'Hiragino Kaku Gothic ProN', 'Noto Sans CJK JP', 'Noto Sans JP', "
    "'Yu Gothic', YuGothic, Meiryo, sans-serif"
)

#: A missing value (``None``, NaN) where a number would be drawn.
MISSING = "–"

_WIDTH = 720
_MARGIN = 16
_TITLE_Y = 26
_TOP = 48
_INK = "#1a1a1a"
_MUTED = "#555555"
_GRID = "#cccccc"
_COLOURS = ("#2f6db5", "#e07b28", "#3a9a5b", "#8c5bb5", "#b5403a")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@attrs.frozen
class Chart:
    """One chart: its ``title`` and the ``svg`` text (a complete ``<svg>`` element, 100% wide,
    sized by its ``viewBox``). ``str(chart)`` is the SVG; a notebook shows the chart itself,
    and :func:`~nurturekit.reports.html.html_document` puts it in a report."""

    title: str
    svg: str = attrs.field(repr=False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}>"

    def __str__(self) -> str:
        return self.svg

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return self.svg


# ---------------------------------------------------------------------------- the four charts


def funnel_chart(
    report: Report,
    *,
    label: str | None = None,
    value: str | None = None,
    rate: str | None = None,
) -> Chart:
    """The funnel as horizontal bars, one per row in the report's order, each labelled with
    its stage, its count and its conversion rate.

    The columns are found by name or, when not named, by their values: ``label`` is the
    ``stage`` column (else the first one), ``value`` the first column of whole numbers and
    ``rate`` the first column of fractions whose name says ``conversion`` (else ``rate``);
    without one, no rate is drawn."""
    where = "funnel_chart"
    _check_named(report, where, label=label, value=value, rate=rate)
    if not report.rows():
        return _no_data(report.title)
    label = label or ("stage" if "stage" in report.columns else report.columns[0])
    value = value or _first(report, where, "value", _whole_numbers(report, exclude={label}))
    rate = rate or _named(_fractions(report, exclude={label, value}), "conversion", "rate")
    rows = report.rows()
    labels = [cell_text(row[label]) for row in rows]
    counts = [_number(row[value]) for row in rows]
    top = max((c for c in counts if c is not None), default=0.0)

    label_width = _clamp(max(_text_width(text, 13) for text in labels) + 10, 60, 240)
    rate_x = _WIDTH - _MARGIN
    count_x = rate_x - (80 if rate else 0)
    bar_x = _MARGIN + label_width
    bar_room = count_x - 80 - bar_x
    row_height = 30
    svg = _Svg(report.title, _TOP + 18 + row_height * len(rows) + _MARGIN)
    header_y = _TOP + 8
    svg.text(count_x, header_y, _words(value), anchor="end", size=11, fill=_MUTED)
    if rate:
        svg.text(rate_x, header_y, _words(rate), anchor="end", size=11, fill=_MUTED)
    for index, row in enumerate(rows):
        y = header_y + 10 + index * row_height
        middle = y + row_height / 2
        svg.text(bar_x - 8, middle + 4.5, _fit(labels[index], label_width - 10, 13), anchor="end")
        count = counts[index]
        tip = f"{labels[index]} — {_words(value)}: {_exact(row[value])}"
        if rate:
            tip += f", {_words(rate)}: {_exact(row[rate])}"
        width = _length(bar_room, None if count is None else count / top if top > 0 else 0.0)
        if width is not None:
            svg.bar(bar_x, y + 5, width, row_height - 10, _COLOURS[0], tip)
        svg.value(count_x, middle + 4.5, _count_text(count), anchor="end", column=value)
        if rate:
            svg.value(
                rate_x, middle + 4.5, _percent_text(_number(row[rate])), anchor="end", column=rate
            )
    return svg.chart()


def histogram(
    report: Report, *, label: str | Sequence[str] | None = None, value: str | None = None
) -> Chart:
    """A distribution (such as :func:`~nurturekit.reports.score_distribution`) as vertical
    bars, one per row (a bin) in the report's order, each with its count above it and its bin
    below.

    ``value`` is the count: the last column of whole numbers unless named. ``label`` names
    the bin's column, or its columns joined with ``–`` (``from_score``, ``to_score``: ``0–20``);
    by default the columns before ``value``."""
    where = "histogram"
    labels_named = [label] if isinstance(label, str) else list(label or ())
    _check_named(report, where, label=labels_named, value=value)
    if not report.rows():
        return _no_data(report.title)
    value = value or _first(report, where, "value", _whole_numbers(report)[::-1])
    if not labels_named:
        labels_named = list(report.columns[: report.columns.index(value)])
        labels_named = labels_named or [c for c in report.columns if c != value][:1]
    rows = report.rows()
    names = ["–".join(cell_text(row[c]) for c in labels_named) for row in rows]
    counts = [_number(row[value]) for row in rows]
    step, top = _scale(max((c for c in counts if c is not None), default=0.0))
    ticks = [(step * i / top, _count_text(step * i)) for i in range(round(top / step) + 1)]
    return _columns(
        report.title,
        names,
        [None if c is None else c / top for c in counts],
        [_count_text(c) for c in counts],
        [
            f"{name} — {_words(value)}: {_exact(row[value])}"
            for name, row in zip(names, rows, strict=True)
        ],
        ticks,
        value,
    )


def kpi_bars(
    report: Report,
    *,
    label: str | Sequence[str] | None = None,
    rates: Sequence[str] | None = None,
) -> Chart:
    """Step KPIs as grouped horizontal bars on one 0–100% scale: for each row (a step), one bar
    per rate (by default open, click and conversion rate), in a colour the legend names.

    ``rates`` are the columns drawn, by default every column of fractions whose name ends in
    ``rate``. ``label`` names the column, or the columns (shown joined by a slash), that say
    which step a row is; by default the text columns before the first number.

    >>> from nurturekit.reports import Report
    >>> steps = Report(
    ...     "Step KPIs",
    ...     ("scenario", "template", "open_rate", "click_rate"),
    ...     [{"scenario": "資料請求", "template": "資料ダウンロードお礼",
    ...       "open_rate": 0.5, "click_rate": None}],
    ... )
    >>> svg = kpi_bars(steps, label=("scenario", "template")).svg
    >>> "資料請求 / 資料ダウンロードお礼" in svg, "50.0%" in svg, svg.count("<title>")
    (True, True, 2)
    """
    where = "kpi_bars"
    labels_named = [label] if isinstance(label, str) else list(label or ())
    rates = [rates] if isinstance(rates, str) else list(rates or ())
    _check_named(report, where, label=labels_named, rates=rates)
    if not report.rows():
        return _no_data(report.title)
    if not labels_named:
        numeric = set(_numbers(report))
        for column in report.columns:
            if column in numeric:
                break
            labels_named.append(column)
        labels_named = labels_named or [report.columns[0]]
    if not rates:
        rates = [c for c in _fractions(report, exclude=labels_named) if c.endswith("rate")]
        if not rates:
            raise InvalidInput(
                f"{where}(rates=...)",
                f"report {report.title!r} has no numeric column named …rate; name the rate "
                f"columns to draw, among {list(report.columns)}",
            )
    rows = report.rows()
    names = [" / ".join(cell_text(row[c]) for c in labels_named) for row in rows]
    legend = [_words(c) for c in rates]

    legend_y = _TOP
    name_width = _clamp(max(_text_width(text, 11) for text in legend) + 8, 40, 140)
    bar_x = _MARGIN + name_width
    bar_room = _WIDTH - _MARGIN - 56 - bar_x
    bar_height = 13
    group_height = 20 + len(rates) * (bar_height + 3) + 10
    axis_y = legend_y + 22
    height = axis_y + 14 + group_height * len(rows) + _MARGIN
    svg = _Svg(report.title, height)
    x = float(_MARGIN)
    for index, name in enumerate(legend):
        svg.rect(x, legend_y - 10, 12, 12, _COLOURS[index % len(_COLOURS)])
        svg.text(x + 16, legend_y, name, size=12)
        x += 16 + _text_width(name, 12) + 18
    bottom = height - _MARGIN
    for percent in (0, 25, 50, 75, 100):
        x = bar_x + bar_room * percent / 100
        svg.line(x, axis_y + 4, x, bottom, _GRID)
        svg.text(x, axis_y, f"{percent}%", anchor="middle", size=10, fill=_MUTED, kind="nk-axis")
    for index, row in enumerate(rows):
        y = axis_y + 14 + index * group_height
        svg.text(_MARGIN, y + 14, _fit(names[index], _WIDTH - 2 * _MARGIN, 13), weight="bold")
        for number, column in enumerate(rates):
            bar_y = y + 20 + number * (bar_height + 3)
            fraction = _number(row[column])
            svg.text(bar_x - 6, bar_y + 10.5, legend[number], anchor="end", size=11, fill=_MUTED)
            tip = f"{names[index]} — {legend[number]}: {_exact(row[column])}"
            width = _length(bar_room, fraction)
            if width is not None:
                svg.bar(bar_x, bar_y, width, bar_height, _COLOURS[number % len(_COLOURS)], tip)
            text_x = bar_x + (width or 0.0) + 5
            svg.value(text_x, bar_y + 10.5, _percent_text(fraction), size=11, column=column)
    return svg.chart()


def sla_chart(report: Report, *, label: str | None = None, value: str | None = None) -> Chart:
    """The hand-off SLA kept per period as vertical bars on a 0–100% scale, each with its rate
    above it; a period without a rate (nothing was due) shows ``–`` and no bar.

    ``label`` is the period's column (the first one unless named); ``value`` the rate kept: the
    first column of fractions whose name says ``sla``, else ``kept``, else ``rate``, else the
    first column of fractions, unless named."""
    where = "sla_chart"
    _check_named(report, where, label=label, value=value)
    if not report.rows():
        return _no_data(report.title)
    label = label or report.columns[0]
    if value is None:
        fractions = _fractions(report, exclude={label})
        value = _named(fractions, "sla", "kept", "rate") or _first(
            report, where, "value", fractions
        )
    rows = report.rows()
    kept = [_number(row[value]) for row in rows]
    return _columns(
        report.title,
        [cell_text(row[label]) for row in rows],
        [None if k is None else _clamp(k, 0, 1) for k in kept],
        [_percent_text(k) for k in kept],
        [f"{cell_text(row[label])} — {_words(value)}: {_exact(row[value])}" for row in rows],
        [(p / 100, f"{p}%") for p in (0, 25, 50, 75, 100)],
        value,
    )


# ---------------------------------------------------------------------------- drawing


class _Svg:
    """The parts of one chart, written in order; the title is drawn at the top."""

    def __init__(self, title: str, height: float) -> None:
        self.title = title
        self.height = height
        self.parts: list[str] = []
        self.text(_MARGIN, _TITLE_Y, title, size=16, weight="bold")

    def text(
        self,
        x: float,
        y: float,
        content: str,
        *,
        anchor: str = "start",
        size: float = 13,
        weight: str | None = None,
        fill: str = _INK,
        kind: str | None = None,
        column: str | None = None,
        rotate: float = 0,
    ) -> None:
        attributes = [f'x="{_n(x)}"', f'y="{_n(y)}"']
        if kind:
            attributes.append(f'class="{kind}"')
        if column:
            attributes.append(f'data-column="{_escape(column)}"')
        if anchor != "start":
            attributes.append(f'text-anchor="{anchor}"')
        if size != 13:
            attributes.append(f'font-size="{_n(size)}"')
        if weight:
            attributes.append(f'font-weight="{weight}"')
        if fill != _INK:
            attributes.append(f'fill="{fill}"')
        if rotate:
            attributes.append(f'transform="rotate({_n(rotate)} {_n(x)} {_n(y)})"')
        self.parts.append(f"<text {' '.join(attributes)}>{_escape(content)}</text>")

    def value(
        self,
        x: float,
        y: float,
        content: str,
        *,
        column: str,
        anchor: str = "start",
        size: float = 13,
    ) -> None:
        self.text(x, y, content, anchor=anchor, size=size, kind="nk-value", column=column)

    def rect(self, x: float, y: float, width: float, height: float, fill: str) -> None:
        self.parts.append(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}" '
            f'fill="{fill}"/>'
        )

    def bar(self, x: float, y: float, width: float, height: float, fill: str, tip: str) -> None:
        self.parts.append(
            f'<rect class="nk-bar" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" '
            f'height="{_n(height)}" fill="{fill}"><title>{_escape(tip)}</title></rect>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str) -> None:
        self.parts.append(
            f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
            f'stroke="{stroke}" stroke-width="1"/>'
        )

    def chart(self) -> Chart:
        height = _n(math.ceil(self.height))
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="nk-chart" '
            f'viewBox="0 0 {_WIDTH} {height}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="{_escape(self.title)}" '
            f'font-family="{_escape(FONT_FAMILY)}" font-size="13" fill="{_INK}">'
        )
        body = "\n".join([f"<title>{_escape(self.title)}</title>", *self.parts])
        return Chart(self.title, f"{head}\n{body}\n</svg>")


def _no_data(title: str) -> Chart:
    svg = _Svg(title, 110)
    svg.text(_WIDTH / 2, 76, "no data", anchor="middle", size=15, fill=_MUTED, kind="nk-empty")
    return svg.chart()


def _columns(
    title: str,
    labels: list[str],
    heights: list[float | None],
    texts: list[str],
    tips: list[str],
    ticks: list[tuple[float, str]],
    column: str,
) -> Chart:
    """Vertical bars: ``heights`` as fractions of the plot, ``texts`` drawn above the bars,
    ``labels`` below them (turned when they do not fit), ``ticks`` on the left axis."""
    left = _MARGIN + max(_text_width(text, 10) for _, text in ticks) + 8
    room = _WIDTH - _MARGIN - left
    slot = room / len(labels)
    label_size = 12.0 if slot >= 40 else 10.0
    value_size = _clamp((slot - 2) / (0.6 * max(len(t) for t in texts)), 7, 12)
    widest = max(_text_width(text, label_size) for text in labels)
    turned = widest > slot - 4
    shown = [_fit(text, 150 if turned else slot - 4, label_size) for text in labels]
    label_room = (
        max(_text_width(t, label_size) for t in shown) * 0.72 + 14 if turned else label_size + 8
    )
    plot_top = _TOP + 8
    plot_height = 220.0
    base = plot_top + plot_height
    svg = _Svg(title, base + label_room + _MARGIN)
    for tick, text in ticks:
        y = base - plot_height * tick
        svg.line(left, y, _WIDTH - _MARGIN, y, _GRID)
        svg.text(left - 6, y + 3.5, text, anchor="end", size=10, fill=_MUTED, kind="nk-axis")
    for index, height in enumerate(heights):
        x = left + slot * index
        middle = x + slot / 2
        bar_height = _length(plot_height, height)
        if bar_height is not None:
            svg.bar(
                x + slot * 0.1, base - bar_height, slot * 0.8, bar_height, _COLOURS[0], tips[index]
            )
        bar_height = bar_height or 0.0
        svg.value(
            middle,
            base - bar_height - 4,
            texts[index],
            anchor="middle",
            size=value_size,
            column=column,
        )
        if turned:
            svg.text(middle + 3, base + 12, shown[index], anchor="end", size=label_size, rotate=-45)
        else:
            svg.text(middle, base + label_size + 4, shown[index], anchor="middle", size=label_size)
    svg.line(left, base, _WIDTH - _MARGIN, base, _MUTED)
    return svg.chart()


# ---------------------------------------------------------------------------- columns


def _check_named(report: Report, where: str, **named: str | Sequence[str] | None) -> None:
    for parameter, value in named.items():
        for column in [value] if isinstance(value, str) else list(value or ()):
            if column not in report.columns:
                raise InvalidInput(
                    f"{where}({parameter}={column!r})",
                    f"report {report.title!r} has no column {column!r}; its columns are "
                    f"{list(report.columns)}",
                )


def _numbers(report: Report, *, exclude: Collection[str] = ()) -> list[str]:
    """The columns whose values are all numbers or missing, in the report's order."""
    return [
        column
        for column in report.columns
        if column not in exclude
        and all(v is None or _is_number(v) for v in _values(report, column))
    ]


def _whole_numbers(report: Report, *, exclude: Collection[str] = ()) -> list[str]:
    """The columns of counts: whole numbers or missing values."""
    return [
        column
        for column in _numbers(report, exclude=exclude)
        if not any(isinstance(v, float) for v in _values(report, column))
    ]


def _fractions(report: Report, *, exclude: Collection[str] = ()) -> list[str]:
    """The columns of rates: floats or missing values (a rate with nothing to divide)."""
    return [
        column
        for column in _numbers(report, exclude=exclude)
        if not any(isinstance(v, int) for v in _values(report, column))
    ]


def _named(columns: Sequence[str], *words: str) -> str | None:
    """The first of ``columns`` whose name holds one of ``words``, trying them in order."""
    return next((c for word in words for c in columns if word in c), None)


def _values(report: Report, column: str) -> list[Any]:
    return [row[column] for row in report.rows()]


def _first(report: Report, where: str, parameter: str, candidates: Sequence[str]) -> str:
    if not candidates:
        raise InvalidInput(
            f"{where}({parameter}=...)",
            f"report {report.title!r} has no column this chart can draw; name one of "
            f"{list(report.columns)}",
        )
    return candidates[0]


# ---------------------------------------------------------------------------- text and numbers


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A cell as a number to draw; ``None`` when it is missing or not a number."""
    if not _is_number(value) or value != value:
        return None
    return float(value)


def _exact(value: Any) -> str:
    """A cell in full, for a bar's ``<title>``: a float to its last digit, and a rate as a
    percentage as well."""
    if value is None:
        return "no value"
    if isinstance(value, float):
        return f"{value!r} ({value * 100:g}%)" if 0 <= value <= 1 else repr(value)
    return cell_text(value)


def _count_text(value: float | None) -> str:
    if value is None:
        return MISSING
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _percent_text(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.1f}%"


def _words(column: str) -> str:
    return column.replace("_", " ")


def _scale(top: float) -> tuple[float, float]:
    """A round step (1, 2 or 5 times a power of ten) and the axis top, a multiple of it at or
    above ``top``, for about four grid lines."""
    if top <= 0:
        return 1.0, 1.0
    rough = top / 4
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    step = max(step, 1.0)
    return step, step * math.ceil(top / step)


def _text_width(text: str, size: float) -> float:
    """About how wide ``text`` is drawn: full-width (Japanese) characters one em, others 0.6."""
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else size * 0.6 for ch in text)


def _fit(text: str, width: float, size: float) -> str:
    """``text`` cut with an ellipsis to about ``width`` (the whole text is in the bar's title)."""
    if _text_width(text, size) <= width:
        return text
    while text and _text_width(text + "…", size) > width:
        text = text[:-1]
    return text + "…"


def _length(room: float, fraction: float | None) -> float | None:
    """How long a bar is drawn: none for a missing value, 0 for 0, at least 1 for the least
    value above 0 (so it shows), and no longer than ``room``."""
    if fraction is None:
        return None
    return 0.0 if fraction <= 0 else max(room * min(fraction, 1.0), 1.0)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _n(value: float) -> str:
    """A coordinate, short: ``12``, ``12.5``."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _escape(text: str) -> str:
    """Text made safe inside XML and HTML: markup characters escaped, and the control
    characters XML 1.0 cannot hold replaced by U+FFFD."""
    return html.escape(_NOT_XML.sub("\ufffd", text), quote=True)
