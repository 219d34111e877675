"""A self-contained HTML report of a run or sweep folder: figures embedded as base64 PNG,
the configuration, the manifest and the key numbers, in one file that opens offline.

A run's report reads as one run: the scenario's question and description, its headline
numbers (with their references and change since the first step), its timeline and its own
figures (no seed intervals, no trade-off across variants). A sweep's compares variants:
means over seeds with 95% intervals, the comparison figures and the points table."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from simulator.analysis.baselines import below_popularity
from simulator.analysis.compare import (
    at_last_step,
    default_metrics,
    folder_kind,
    heatmap_keys,
    load_runs,
    summarise_runs,
    write_figures,
)
from simulator.analysis.defense_activity import skipped_defenses
from simulator.analysis.headlines import default_headline, headline_rows
from simulator.analysis.labels import metric_label
from simulator.analysis.plots import plot_run
from simulator.analysis.timeline import NOT_MARKED, run_schedule
from simulator.runs.outputs import now_iso, write_text

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


def _run_numbers(metrics: pd.DataFrame, headline: list[str]) -> str:
    """The headline metrics of one run at its last step: value, change since the first
    step, and reference (chance, popularity baseline or the run without attack)."""
    if not headline:
        extra = [m for m in EXTRA_METRICS if m in metrics.columns]
        headline = [*default_headline(list(metrics.columns)), *extra]
    rows, _ = headline_rows(metrics, headline)
    first, last = int(metrics["step"].iloc[0]), int(metrics["step"].iloc[-1])
    body = [[metric_label(r.metric), r.metric, r.last, f"{r.change:+.4f}",
             "" if r.reference is None else f"{_number(r.reference)} ({r.reference_name})"]
            for r in rows if math.isfinite(r.last)]
    return (f"<p>At the last step ({last}), with the change since step {first}:</p>"
            + _table(["metric", "column", "value", "change", "reference"], body))


def _timeline(events: pd.DataFrame) -> str:
    """The retrains in one line, and every other event that happened, in order."""
    retrains = events[events["kind"] == "retrain"]["step"].astype(int).tolist()
    shown = events[~events["kind"].isin(NOT_MARKED)]
    lines = [f"<p>{len(retrains)} retrains, at steps {', '.join(map(str, retrains))}.</p>"
             if retrains else "<p>No retrain.</p>"]
    if len(shown):
        rows: list[list[Any]] = [
            [int(step), str(kind).replace("_", " "), str(agent), float(value)]
            for step, kind, agent, value in zip(shown["step"], shown["kind"], shown["agent"],
                                                shown["value"], strict=True)]
        lines.append(_table(["step", "event", "by", "value"], rows))
    return "".join(lines)


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


def _run_sections(folder: Path, question: str | None) -> tuple[str, str, list[Path]]:
    """A run's introduction (question, description), key numbers with its timeline, and its
    own figures (written to `<folder>/figures/` with the timeline marks)."""
    config = yaml.safe_load(_read(folder / "config.yaml")) or {}
    metrics = pd.read_parquet(folder / "metrics.parquet")
    groups = pd.read_parquet(folder / "groups.parquet")
    events = pd.read_parquet(folder / "events.parquet")
    description = " ".join(str(config.get("description", "")).split())
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    changes = manifest.get("changes")
    if changes:  # a named scenario changed by overrides: its texts describe the base
        base = str(changes["from"])
        labels = (f"Changes from {base}:", "The base scenario's question:",
                  f"The base scenario ({base}):")
        settings = ", ".join(map(str, changes["settings"]))
    else:
        labels, settings = ("", "Question:", "Scenario:"), ""
    intro = "".join(f"<p><b>{_esc(label)}</b> {_esc(text)}</p>" for label, text in zip(
        labels, (settings, question, description), strict=True) if text)
    skipped = skipped_defenses(events)
    if skipped:
        intro += "".join(f"<p><b>Defense did not act:</b> {_esc(line)}</p>" for line in skipped)
    below = below_popularity(metrics)
    if below is not None:
        intro += f"<p><b>Platform below popularity:</b> {_esc(below)}</p>"
    headline = list((config.get("report") or {}).get("headline") or [])
    k = int((config.get("metrics") or {}).get("k", 10))
    schedule, steps = run_schedule(config, str(folder / "config.yaml"))
    figures = plot_run(metrics, groups, folder / "figures", k, events, schedule, steps)
    numbers = (_run_numbers(metrics, headline)
               + f"<h2>Timeline</h2>{_timeline(events)}")
    return intro, numbers, figures


def _images(figures: list[Path], folder: Path) -> str:
    return "".join(_image(p, folder) for p in figures) or "<p>No figures.</p>"


def _write_page(out: Path, name: str, meta: str, body: str) -> Path:
    """Write one self-contained report page: the title, a line saying what folder it is of
    and when it was written, then `body` (HTML)."""
    document = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_esc(name)} - privsim report</title><style>{STYLE}</style></head>
<body>
<h1>{_esc(name)}</h1>
<p class="meta">{_esc(meta)}; report written {_esc(now_iso())}</p>
{body}</body></html>
"""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, document)
    return out


def _counterfactual_report(folder: Path, out: Path) -> Path:
    """A counterfactual folder's report: what was compared, each figured metric's paired
    difference at the last step, both arms and their difference over time, the arms."""
    plan = json.loads(_read(folder / "counterfactual.json"))
    summary = pd.read_parquet(folder / "counterfactual.parquet")
    figures = sorted((folder / "plots").glob("difference_*.png"))
    last = summary[summary["step"] == summary["step"].max()].set_index("metric")
    rows = []
    for path in figures:
        metric = path.stem.removeprefix("difference_")
        if metric in last.index:
            row = last.loc[metric]
            interval = "" if math.isnan(row["ci_low"]) else (
                f" [{_number(row['ci_low'])}, {_number(row['ci_high'])}]")
            rows.append([metric_label(metric), metric, _number(row["mean_with"]),
                         _number(row["mean_without"]),
                         f"{_number(row['mean_difference'])}{interval}",
                         "yes" if row["excludes_zero"] else "no"])
    name = f"{plan['scenario']} against its counterfactual"
    arms = sorted(p.name for p in folder.iterdir() if p.is_dir() and "-seed-" in p.name)
    body = f"""<p><b>With:</b> {_esc(plan['scenario'])}. <b>Without:</b> the same with
{_esc(' '.join(plan['without']))}. Paired on seeds {_esc(', '.join(map(str, plan['seeds'])))}
(both arms of a seed share every random draw).</p>
<h2>Key numbers</h2>
<p>At step {int(summary['step'].max())}: the mean over seeds of each arm, and of with minus
without with its 95% t interval.</p>
{_table(["metric", "column", "with", "without", "with - without", "interval excludes 0"],
        rows)}
<h2>Figures</h2>{_images(figures, folder)}
<h2>Arms</h2><p>{_esc(', '.join(arms))}</p>
"""
    return _write_page(out, name, f"counterfactual folder {folder}", body)


def write_report(folder: Path, out: Path | None = None, question: str | None = None) -> Path:
    """Write one self-contained HTML report of a run or sweep folder (default
    `<folder>/report.html`) and its figures under `<folder>/figures/` (a run's own figures
    as PNG; a sweep's comparison figures as PNG and PDF). `question` is the scenario's
    question, shown at the top of a run's report."""
    folder = Path(folder)
    if (folder / "counterfactual.json").is_file():
        return _counterfactual_report(folder, folder / "report.html" if out is None else Path(out))
    kind = folder_kind(folder)
    out = folder / "report.html" if out is None else Path(out)
    table = load_runs([folder])
    notes = list(table.attrs.get("warnings", []))
    metrics = default_metrics(table) if not table.empty else []
    figures: list[Path] = []
    numbers = "<p>No completed results.</p>"
    intro = ""
    if metrics and kind == "run":
        intro, numbers, figures = _run_sections(folder, question)
    elif metrics:
        summary = summarise_runs(table, metrics)
        written = write_figures(table, summary, folder / "figures", metrics, heatmap_keys(table))
        figures = [p for p in written if p.suffix == ".png"]
        numbers = _sweep_numbers(summary, metrics)
    if kind == "run":
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        name = str(manifest.get("title") or manifest.get("scenario", folder.name))
        points = ""
        configs = [f"<h3>config.yaml</h3><pre>{_esc(_read(folder / 'config.yaml'))}</pre>"]
    else:
        name, points_table, configs = _sweep_sections(folder)
        points = f"<h2>Points</h2>{points_table}"
    warnings = ("<h2>Warnings</h2><ul>"
                + "".join(f'<li class="warning">{_esc(n)}</li>' for n in notes) + "</ul>"
                if notes else "")
    body = f"""{intro}
{warnings}
<h2>Key numbers</h2>{numbers}
<h2>Figures</h2>{_images(figures, folder)}
{points}
<h2>Configuration</h2>{"".join(configs)}
<h2>Manifest</h2><pre>{_esc(_manifest_text(folder))}</pre>
"""
    return _write_page(out, name, f"{kind} folder {folder}", body)
