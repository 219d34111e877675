"""A self-contained HTML report of a run or sweep folder: figures embedded as base64 PNG,
the configuration, the manifest and the key numbers, in one file that opens offline."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.analysis.compare import (
    at_last_step,
    default_metrics,
    folder_kind,
    heatmap_keys,
    load_runs,
    summarise_runs,
    write_figures,
)
from simulator.core.outputs import now_iso, write_text

# Shown among the key numbers when a run has them, after the accuracy and leakage metrics.
EXTRA_METRICS = ("disclosure_mean", "beta_mean", "pop_hr_10", "target_hr_10",
                 "target_hr_10_clean", "prediction_shift", "mia_auc", "dp_epsilon_user_max")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.warning { color: #8a4b00; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    """A table cell: floats with four decimals, NaN as 'n/a', anything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{_esc(_number(c))}</td>' if isinstance(c, int | float)
            else f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _run_numbers(table: pd.DataFrame, metrics: list[str]) -> str:
    """The last step's value of every key metric of one run."""
    last = at_last_step(table)
    step = int(last["step"].iloc[0])
    rows = [[metric, float(last[metric].mean())] for metric in metrics]
    return f"<p>At the last step ({step}):</p>" + _table(["metric", "value"], rows)


def _sweep_numbers(summary: pd.DataFrame, metrics: list[str]) -> str:
    """Per variant at its last step: each key metric's mean over seeds and 95% interval."""
    last = at_last_step(summary)
    rows = []
    for variant, part in last.groupby("variant", sort=False):
        cells = part.set_index("metric")
        row: list[Any] = [variant, int(cells["step"].iloc[0]), int(cells["n"].max())]
        for metric in metrics:
            mean, low, high = (float(cells[c].loc[metric]) for c in ("mean", "ci_low", "ci_high"))
            interval = "" if math.isnan(low) else f" [{_number(low)}, {_number(high)}]"
            row.append(f"{_number(mean)}{interval}")
        rows.append(row)
    return ("<p>Mean over seeds at the last step, with the 95% interval (t-based).</p>"
            + _table(["variant", "step", "seeds", *metrics], rows))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else "(not written)"


def _manifest_text(folder: Path) -> str:
    path = folder / "manifest.json"
    if not path.is_file():
        return "(not written)"
    return json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=2)


def _image(path: Path, folder: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = path.relative_to(folder).as_posix()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(path.stem)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _sweep_sections(folder: Path) -> tuple[str, str, list[str]]:
    """A sweep's name (with its base), its points table and its configuration blocks."""
    spec = yaml.safe_load(_read(folder / "sweep.yaml")) or {}
    name = f"{spec.get('name', folder.name)} (base: {spec.get('base', '?')})"
    configs = [f"<h3>sweep.yaml</h3><pre>{_esc(_read(folder / 'sweep.yaml'))}</pre>"]
    points_file = folder / "points.parquet"
    if not points_file.is_file():
        return name, "<p>The sweep has not finished: no points table.</p>", configs
    points = pd.read_parquet(points_file).astype(object).where(lambda f: f.notna(), "")
    done = points[points["status"] == "completed"]
    if len(done):
        run_dir = str(done["run_dir"].iloc[0])
        configs.append(f"<h3>Resolved scenario of {_esc(run_dir)}</h3>"
                       f"<pre>{_esc(_read(folder / run_dir / 'config.yaml'))}</pre>")
    return name, _table(list(points.columns), points.to_numpy().tolist()), configs


def write_report(folder: Path, out: Path | None = None) -> Path:
    """Write one self-contained HTML report of a run or sweep folder (default
    `<folder>/report.html`) and its figures as PNG and PDF under `<folder>/figures/`."""
    folder = Path(folder)
    kind = folder_kind(folder)
    out = folder / "report.html" if out is None else Path(out)
    table = load_runs([folder])
    notes = list(table.attrs.get("warnings", []))
    metrics = default_metrics(table) if not table.empty else []
    figures: list[Path] = []
    numbers = "<p>No completed results.</p>"
    if metrics:
        summary = summarise_runs(table, metrics)
        written = write_figures(table, summary, folder / "figures", metrics, heatmap_keys(table))
        figures = [p for p in written if p.suffix == ".png"]
        if kind == "run":
            extra = [m for m in EXTRA_METRICS if m in table.columns and m not in metrics
                     and pd.api.types.is_numeric_dtype(table[m]) and table[m].notna().any()]
            numbers = _run_numbers(table, [*metrics, *extra])
        else:
            numbers = _sweep_numbers(summary, metrics)
    if kind == "run":
        figures += sorted((folder / "plots").glob("*.png"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        name = str(manifest.get("scenario", folder.name))
        points = ""
        configs = [f"<h3>config.yaml</h3><pre>{_esc(_read(folder / 'config.yaml'))}</pre>"]
    else:
        name, points_table, configs = _sweep_sections(folder)
        points = f"<h2>Points</h2>{points_table}"
    warnings = ("<h2>Warnings</h2><ul>"
                + "".join(f'<li class="warning">{_esc(n)}</li>' for n in notes) + "</ul>"
                if notes else "")
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_esc(name)} - privsim report</title><style>{STYLE}</style></head>
<body>
<h1>{_esc(name)}</h1>
<p class="meta">{_esc(kind)} folder {_esc(folder)}; report written {_esc(now_iso())}</p>
{warnings}
<h2>Key numbers</h2>{numbers}
<h2>Figures</h2>{"".join(_image(p, folder) for p in figures) or "<p>No figures.</p>"}
{points}
<h2>Configuration</h2>{"".join(configs)}
<h2>Manifest</h2><pre>{_esc(_manifest_text(folder))}</pre>
</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, document)
    return out
