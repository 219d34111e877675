"""The example notebook runs, top to bottom, through the Python API."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.heavy  # long tests: started first (tests/conftest.py)

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = " ".join(str(o.get("text", "")) for o in outputs)
    assert "everyone discloses" in text and "HR@10" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot was shown
    assert list(tmp_path.iterdir()) == []  # runs without `out` keep nothing
