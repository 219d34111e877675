"""Interactive charts of the dashboard, as Altair (Vega-Lite) specs that Streamlit serves
itself, so they work offline: lines with hover values, seed bands, dashed reference lines
(chance, popularity, without attack), the timeline layer (retrains as light rules, events
and defense starts as labelled dashed rules) and legends below the plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import altair as alt
import pandas as pd

from simulator.analysis.labels import metric_label

HEIGHT = 220  # of the plot itself: titles, axes and legends come on top (autosize fit-x)
LEGEND_COLUMNS = 2
LONG_LABEL = 28  # characters: longer legend labels get a column each
SCHEME: Final[Literal["tableau10"]] = "tableau10"  # distinct hues, unlike a blue ramp
_STEP_AXIS = alt.Axis(format="d", tickMinStep=1, title="step")
_FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")


def legend(title: str | None = None, symbol: str = "stroke", columns: int = LEGEND_COLUMNS
           ) -> alt.Legend:
    """Below the plot, in columns, so the plot keeps the chart's whole width whatever the
    labels, and labels never cut (no length limit); `symbol` "stroke" for lines, "circle"
    for points."""
    return alt.Legend(orient="bottom", direction="horizontal", columns=columns,
                      title=title, labelLimit=0, symbolType=symbol, symbolStrokeWidth=3,
                      symbolOpacity=1.0)


def _colours(domain: Sequence[str], title: str | None = None, field: str = "label",
             symbol: str = "stroke") -> alt.Color:
    """Colours by `field` over the whole `domain`: charts given the same domain give each
    label the same colour, whichever labels a chart shows. Long labels get a column each."""
    columns = 1 if max(map(len, domain), default=0) > LONG_LABEL else LEGEND_COLUMNS
    return alt.Color(f"{field}:N", scale=alt.Scale(domain=list(domain), scheme=SCHEME),
                     legend=legend(title, symbol, columns))


def _sized(chart: Any, title: str | alt.TitleParams) -> alt.LayerChart:
    sized: alt.LayerChart = chart.properties(height=HEIGHT, title=title, autosize=_FIT_WIDTH)
    return sized


def metric_chart(bands: pd.DataFrame, metric: str, labels: Mapping[str, str],
                 descriptions: Mapping[str, str], reference: pd.DataFrame,
                 reference_name: str, retrains: Sequence[int],
                 marks: pd.DataFrame, domain: Sequence[str] | None = None) -> alt.LayerChart:
    """`metric` over steps, one line per variant (mean over its seeds, with its band where
    several seeds give one), its reference dashed, and the timeline layer.

    `bands` has the columns of `data.seed_bands`, `reference` those of
    `data.reference_bands`, `marks` those of `data.timeline_table`. `domain` lists every
    label of the page in order, so each keeps its colour across charts.
    """
    name = metric_label(metric)
    order = list(domain) if domain is not None else [
        labels.get(v, v) for v in pd.unique(bands["variant"])]
    table = bands.assign(label=bands["variant"].map(lambda v: labels.get(v, v)),
                         description=bands["variant"].map(lambda v: descriptions.get(v, v)))
    colour = _colours(order)
    x = alt.X("step:Q", axis=_STEP_AXIS)
    base = alt.Chart(table).encode(x=x, color=colour)
    tooltip = [alt.Tooltip("description:N", title="variant"), alt.Tooltip("step:Q"),
               alt.Tooltip("mean:Q", title=name, format=".4f"),
               alt.Tooltip("n:Q", title="seeds")]
    band_tooltip = [*tooltip, alt.Tooltip("low:Q", format=".4f", title="95% low"),
                    alt.Tooltip("high:Q", format=".4f", title="95% high")]
    layers: list[alt.Chart] = [
        *timeline_layers(retrains, marks),
        base.transform_filter("isValid(datum.low)").mark_area(opacity=0.18).encode(
            y="low:Q", y2="high:Q", tooltip=band_tooltip),
        base.mark_line(point=alt.OverlayMarkDef(size=36)).encode(
            y=alt.Y("mean:Q", title=name, scale=alt.Scale(zero=False)), tooltip=tooltip),
    ]
    subtitle = ""
    if not reference.empty:
        layers.append(reference_layer(reference, reference_name, labels, order))
        subtitle = f"dashed: {reference_name}"
    return _sized(alt.layer(*layers), alt.TitleParams(name, subtitle=subtitle)
                  if subtitle else name)


def reference_layer(reference: pd.DataFrame, reference_name: str,
                    labels: Mapping[str, str], order: Sequence[str]) -> alt.Chart:
    """The reference as dashed lines: grey when every variant shares it, else in each
    variant's colour."""
    table = reference.assign(label=reference["variant"].map(lambda v: labels.get(v, v)),
                             reference=reference_name)
    tooltip = [alt.Tooltip("reference:N"), alt.Tooltip("step:Q"),
               alt.Tooltip("value:Q", format=".4f")]
    chart = alt.Chart(table).mark_line(strokeDash=[5, 4], opacity=0.8)
    if (table["variant"] == "").all():
        return chart.encode(x=alt.X("step:Q", axis=_STEP_AXIS), y="value:Q",
                            color=alt.value("grey"), tooltip=tooltip)
    return chart.encode(x=alt.X("step:Q", axis=_STEP_AXIS), y="value:Q",
                        color=alt.Color("label:N", legend=None,
                                        scale=alt.Scale(domain=list(order), scheme=SCHEME)),
                        tooltip=[alt.Tooltip("label:N", title="variant"), *tooltip])


def timeline_layers(retrains: Sequence[int], marks: pd.DataFrame) -> list[alt.Chart]:
    """Retrains as light rules; events and defense starts as dashed rules labelled at the
    top, with the variants they happened in on hover."""
    layers = []
    if len(retrains):
        layers.append(alt.Chart(pd.DataFrame({"step": list(retrains)})).mark_rule(
            color="grey", opacity=0.15).encode(
                x=alt.X("step:Q", axis=_STEP_AXIS),
                tooltip=[alt.Tooltip("step:Q", title="retrain at step")]))
    if not marks.empty:
        rules = alt.Chart(marks).encode(
            x=alt.X("step:Q", axis=_STEP_AXIS),
            tooltip=[alt.Tooltip("label:N", title="event"), alt.Tooltip("step:Q"),
                     alt.Tooltip("variants:N", title="in")])
        layers.append(rules.mark_rule(color="black", opacity=0.55, strokeDash=[4, 3]))
        # Labels run right of their mark, in three lanes from the top, so that marks a
        # step or two apart do not print over each other.
        lanes = marks.assign(lane=[12 * (i % 3) + 2 for i in range(len(marks))])
        layers.append(alt.Chart(lanes).mark_text(align="left", baseline="top", dx=3,
                                                 fontSize=10, opacity=0.85).encode(
            x=alt.X("step:Q", axis=_STEP_AXIS), y=alt.Y("lane:Q", scale=None),
            text="label:N", tooltip=[alt.Tooltip("label:N", title="event"),
                                     alt.Tooltip("variants:N", title="in")]))
    return layers


def tradeoff_chart(points: pd.DataFrame, privacy: str, utility: str,
                   labels: Mapping[str, str], descriptions: Mapping[str, str],
                   domain: Sequence[str] | None = None) -> alt.LayerChart:
    """One point per run: leakage (x) against utility (y), coloured by variant (over
    `domain`, as in the other charts), with the chance level of an AUC."""
    table = points.assign(label=points["variant"].map(lambda v: labels.get(v, v)),
                          description=points["variant"].map(lambda v: descriptions.get(v, v)))
    order = list(domain) if domain is not None else list(dict.fromkeys(table["label"]))
    better = "lower" if utility in ("mae", "rmse") else "higher"
    dots = alt.Chart(table).mark_point(filled=True, size=80).encode(
        x=alt.X(f"{privacy}:Q", title=f"{metric_label(privacy)} (lower leaks less)",
                scale=alt.Scale(zero=False)),
        y=alt.Y(f"{utility}:Q", title=f"{metric_label(utility)} ({better} is better)",
                scale=alt.Scale(zero=False)),
        color=_colours(order, symbol="circle"),
        tooltip=[alt.Tooltip("description:N", title="variant"), alt.Tooltip("run:N"),
                 alt.Tooltip("step:Q"), alt.Tooltip(f"{privacy}:Q", format=".4f"),
                 alt.Tooltip(f"{utility}:Q", format=".4f")])
    layers: list[alt.Chart] = [dots]
    if privacy.endswith("_auc"):
        layers.append(alt.Chart(pd.DataFrame({"chance": [0.5]})).mark_rule(
            color="grey", strokeDash=[5, 4]).encode(
                x="chance:Q", tooltip=[alt.Tooltip("chance:Q", title="chance (AUC)")]))
    return _sized(alt.layer(*layers), "each run at its last measured step")


def groups_chart(series: pd.DataFrame, chance: pd.Series | None, kind: str, metric: str,
                 retrains: Sequence[int], marks: pd.DataFrame) -> alt.LayerChart:
    """`metric` of every group of one kind over steps (`data.group_series`), with the chance
    level where it has one and the run's timeline layer."""
    name = metric_label(metric)
    table = series.reset_index().melt(id_vars="step", var_name="group", value_name="value")
    lines = alt.Chart(table).mark_line(point=alt.OverlayMarkDef(size=30)).encode(
        x=alt.X("step:Q", axis=_STEP_AXIS),
        y=alt.Y("value:Q", title=name, scale=alt.Scale(zero=False)),
        color=_colours(list(series.columns), kind, field="group"),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("step:Q"),
                 alt.Tooltip("value:Q", title=name, format=".4f")])
    layers = [*timeline_layers(retrains, marks), lines]
    subtitle = ""
    if chance is not None and chance.notna().any():
        frame = pd.DataFrame({"step": chance.index, "value": chance.to_numpy(),
                              "reference": "chance"})
        layers.append(reference_layer(frame.assign(variant=""), "chance", {}, []))
        subtitle = "dashed: chance"
    title = f"{name} by {kind}"
    return _sized(alt.layer(*layers), alt.TitleParams(title, subtitle=subtitle)
                  if subtitle else title)
