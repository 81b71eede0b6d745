"""examples/notebook.ipynb runs without errors in a real Jupyter kernel (nbclient, ipykernel),
and shows what it says: the funnel chart and the KPI table."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "examples" / "notebook.ipynb"


def test_the_notebook_runs_and_shows_the_funnel_chart_and_the_kpi_table(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # Kept without outputs: what a reader opens is the code, not a stale run.
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    data = [output.get("data", {}) for output in outputs]
    charts = [item["image/svg+xml"] for item in data if "image/svg+xml" in item]
    assert len(charts) == 3 and all(chart.lstrip().startswith("<svg") for chart in charts)
    tables = [item["text/html"] for item in data if "text/html" in item]
    assert any("open_rate" in table and "whitepaper follow-up" in table for table in tables)
    assert any("<caption>" in table and "interest" in table for table in tables)  # the funnel
