"""The one shape every report has: a title, named columns and rows of plain values, shown as
a text table (``str``), an HTML table (``_repr_html_``, for notebooks), CSV and a DataFrame."""

from __future__ import annotations

import csv
import html
import importlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import IO, Any

import attrs

from nurturekit.errors import NurtureError

__all__ = ["MissingExtra", "Report", "cell_text"]


class MissingExtra(NurtureError):
    """An optional part needs a package that is not installed; the message says which extra
    installs it (``pip install 'nurturekit[pandas]'``)."""


def cell_text(value: object) -> str:
    """How a cell is written in text, HTML and CSV: rates (floats) with up to 4 decimals,
    times in ISO 8601, durations in hours, ``None`` as an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds() / 3600:.1f} h"
    return str(value)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(dict(row) for row in rows)


@attrs.frozen
class Report:
    """A table of figures: ``title``, ``columns`` (the documented, stable names of each
    report) and ``rows``, each a dict with exactly those keys.

    >>> report = Report("Funnel", ("stage", "entered"), [{"stage": "MQL", "entered": 53}])
    >>> report.rows()
    [{'stage': 'MQL', 'entered': 53}]
    >>> print(report)
    Funnel
    stage  entered
    -----  -------
    MQL         53
    """

    title: str
    columns: tuple[str, ...] = attrs.field(converter=_strings)
    _rows: tuple[Mapping[str, Any], ...] = attrs.field(converter=_frozen_rows, repr=False)
    #: Sentences under the table saying what its figures count.
    notes: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    def __attrs_post_init__(self) -> None:
        for index, row in enumerate(self._rows):
            if tuple(row) != self.columns:
                raise ValueError(
                    f"{self.title}: row {index} has the keys {list(row)}, not the report's "
                    f"columns {list(self.columns)}"
                )

    def __repr__(self) -> str:
        size = f"{len(self._rows)} rows × {len(self.columns)} columns"
        return f"<{type(self).__name__} {self.title!r}: {size}>"

    def rows(self) -> list[dict[str, Any]]:
        """The rows as new dicts (change them freely), in the report's order."""
        return [dict(row) for row in self._rows]

    def to_csv(self, path: str | os.PathLike[str] | IO[str]) -> None:
        """Write the rows as CSV (UTF-8, a header of the column names) to a path or an open
        text file. Cells are written as in :func:`cell_text`."""
        if isinstance(path, str | os.PathLike):
            with open(path, "w", encoding="utf-8", newline="") as target:
                self.to_csv(target)
            return
        writer = csv.writer(path, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self._rows:
            writer.writerow(cell_text(row[column]) for column in self.columns)

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame`` with the report's columns, values as they are
        (numbers stay numbers, times stay datetimes). A missing value (``None``) becomes pandas'
        missing value of its column: ``NaN`` in a column of numbers (so ``df.to_dict("records")``
        gives the rows back with ``NaN`` for ``None`` there). Needs pandas: ``pip install
        'nurturekit[pandas]'``, else :class:`MissingExtra` says so."""
        try:
            # Imported by name: pandas is an optional extra, and mypy needs no stubs for it.
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise MissingExtra(
                "to_pandas() needs pandas, which is not installed; install it with "
                "pip install 'nurturekit[pandas]'"
            ) from None
        return pandas.DataFrame(self.rows(), columns=list(self.columns))

    def __str__(self) -> str:
        cells = [[cell_text(row[c]) for c in self.columns] for row in self._rows]
        widths = [
            max([len(column), *(len(line[i]) for line in cells)])
            for i, column in enumerate(self.columns)
        ]
        numeric = [
            all(isinstance(row[c], int | float) or row[c] is None for row in self._rows)
            for c in self.columns
        ]

        def line(values: Sequence[str]) -> str:
            parts = [
                value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i])
                for i, value in enumerate(values)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(values) for values in cells]
        out += list(self.notes)
        return "\n".join(out)

    def _repr_html_(self) -> str:
        return self.html_table()

    def html_table(self) -> str:
        """The report as one HTML ``<table>`` with a caption, numbers right-aligned; the notes
        follow in a ``<p>``."""
        out = io.StringIO()
        out.write(f'<table class="nk-report"><caption>{html.escape(self.title)}</caption>\n')
        out.write(
            "<thead><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
            + "</tr></thead>\n<tbody>\n"
        )
        for row in self._rows:
            out.write("<tr>")
            for column in self.columns:
                value = row[column]
                align = ' style="text-align:right"' if isinstance(value, int | float) else ""
                out.write(f"<td{align}>{html.escape(cell_text(value))}</td>")
            out.write("</tr>\n")
        out.write("</tbody></table>\n")
        for note in self.notes:
            out.write(f'<p class="nk-note">{html.escape(note)}</p>\n')
        return out.getvalue()
