"""The benchmark report's figures, drawn from the rows of ``bench.report``'s adapters.

Each ``*_figure`` function returns a matplotlib Figure (the tests read its artists) and
:func:`save` writes one as PNG. What keeps them readable:

- every series of a plot has its own colour, line style and marker (:func:`series_styles`),
  so series stay apart in grey print and for colour-blind readers, and a series keeps its look
  across the panels of a figure;
- many series are split into panels (the convergence curves: one panel per worker count);
- legends sit outside the axes, long category names on the y axis of horizontal bars (never
  rotated), and constrained layout keeps labels from overlapping;
- every axis label names its unit.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Matplotlib's ten "tab10" colours, four line styles and nine filled markers: series i takes
# colour i % 10, line style i % 4 and marker i % 9, so all three differ between neighbours and
# no two of the first lcm(10, 4, 9) = 180 series share the three.
COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
)
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
MAX_SERIES = math.lcm(len(COLOURS), len(LINESTYLES), len(MARKERS))
HATCHES = ("", "//", "..", "xx", "\\\\", "++")
DPI = 110
RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def series_styles(count: int) -> list[dict[str, str]]:
    """``count`` distinct ``{"color", "linestyle", "marker"}`` styles, for ``Axes.plot``."""
    if not 0 <= count <= MAX_SERIES:
        raise ValueError(f"series_styles: count must be in 0..{MAX_SERIES}, got {count}")
    return [
        {
            "color": COLOURS[i % len(COLOURS)],
            "linestyle": LINESTYLES[i % len(LINESTYLES)],
            "marker": MARKERS[i % len(MARKERS)],
        }
        for i in range(count)
    ]


@contextmanager
def _pyplot():
    """pyplot on the Agg backend (no display needed) with the report's font sizes and grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context(RC):
        yield plt


def save(fig: Any, path: Path) -> None:
    """Writes the figure as PNG and releases it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=DPI)
    plt.close(fig)


# --------------------------------------------------------------------------------- kernels


def kernels_figure(rows: list[dict]) -> Any:
    """Horizontal bars of sequences/s per kernel configuration, torch's beside ours."""
    labels = [
        f"{r['cell'].upper()} ({r.get('steps', 'numpy')})  "
        f"B{r['shape'][0]} T{r['shape'][1]} I{r['shape'][2]} "
        f"H{r['shape'][3]}  {r['dtype']}  {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
        for r in rows
    ]
    torch = any(r["torch_sequences_per_s"] for r in rows)
    height = 0.4 if torch else 0.7
    positions = list(range(len(rows)))
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(10.5, 2.2 + 0.42 * len(rows)), layout="constrained")
        ax.barh(
            positions,
            [r["sequences_per_s"] for r in rows],
            height,
            color=COLOURS[0],
            label="sparklstm",
        )
        if torch:
            ax.barh(
                [p + height for p in positions],
                [r["torch_sequences_per_s"] or 0 for r in rows],
                height,
                color=COLOURS[1],
                hatch=HATCHES[1],
                edgecolor="white",
                label="torch.nn.LSTM / GRU (no bar: no such module)",
            )
        ax.set_yticks([p + (height / 2 if torch else 0) for p in positions], labels)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("sequences/s, forward + BPTT of one layer (higher is better)")
        ax.set_title("Recurrent kernels: B batch size, T steps, I inputs, H hidden units")
        fig.legend(loc="outside lower center", ncols=2)
    return fig


# --------------------------------------------------------------------------------- Spark


ROUND_PARTS = (
    ("broadcast_seconds", "broadcast"),
    ("compute_seconds", "compute"),
    ("aggregate_seconds", "aggregate + scheduling"),
)


def spark_rounds_figure(rows: list[dict]) -> Any:
    """Stacked bars of the time of a round by part, one panel per averaging policy."""
    spark = [r for r in rows if r["kind"] == "spark"]
    policies = list(dict.fromkeys(r["policy"] for r in spark))
    with _pyplot() as plt:
        fig, axes = plt.subplots(
            1,
            len(policies),
            figsize=(1.5 + 3.5 * len(policies), 4.3),
            squeeze=False,
            layout="constrained",
        )
        for ax, policy in zip(axes[0], policies, strict=True):
            group = [r for r in spark if r["policy"] == policy]
            names = [f"local[{r['workers']}]" for r in group]
            bottom = [0.0] * len(group)
            for i, (key, label) in enumerate(ROUND_PARTS):
                values = [r[key] or 0.0 for r in group]
                ax.bar(
                    names,
                    values,
                    0.6,
                    bottom=bottom,
                    label=label,
                    color=COLOURS[i],
                    hatch=HATCHES[i],
                    edgecolor="white",
                )
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            for i, r in enumerate(group):
                overhead = "–" if r["overhead"] is None else f"{100 * r['overhead']:.1f}%"
                ax.annotate(
                    f"{overhead} overhead",
                    (i, bottom[i]),
                    (0, 3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                )
            ax.set_title(policy)
            ax.set_ylabel("seconds per round (s)")
            ax.set_xlabel("Spark master (executor threads)")
            ax.grid(axis="x", visible=False)
            ax.margins(y=0.15)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels))
    return fig


def scaling_figure(rows: list[dict]) -> Any:
    """Sequences/s against the data size, per configuration: round time alone (solid) and
    with the data preparation (dashed, hollow markers)."""
    names = list(dict.fromkeys(r["name"] for r in rows))
    sizes = sorted({r["data_rows"] for r in rows})
    with _pyplot() as plt:
        fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
        for name, style in zip(names, series_styles(len(names)), strict=True):
            series = [r for r in rows if r["name"] == name]
            x = [r["data_rows"] for r in series]
            ax.plot(
                x,
                [r["sequences_per_s"] for r in series],
                color=style["color"],
                marker=style["marker"],
                linestyle="-",
                label=f"{name}: training rounds",
            )
            ax.plot(
                x,
                [r["with_prepare"] or math.nan for r in series],
                color=style["color"],
                marker=style["marker"],
                markerfacecolor="white",
                linestyle="--",
                label=f"{name}: with data preparation",
            )
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{size:,}" for size in sizes])
        ax.minorticks_off()
        ax.set_xlabel("sequences in the dataset (one epoch; log scale)")
        ax.set_ylabel("training speed (sequences/s)")
        ax.set_ylim(bottom=0)
        ax.set_title("Spark training speed against the data size")
        fig.legend(loc="outside lower center")
    return fig


# --------------------------------------------------------------------------------- convergence

_SPARK_LABEL = re.compile(r"spark \d+ workers?, (.+)")


def averaging_policy(run: dict) -> str:
    """What a convergence run's curve is called in its worker-count panel: the averaging
    policy of a Spark run ("avg every 4 steps"), the label of any other run."""
    match = _SPARK_LABEL.fullmatch(run["label"]) if run["workers"] is not None else None
    return match.group(1) if match else run["label"]


def convergence_figure(conv: dict) -> Any:
    """Final accuracy and time to the target accuracy per run (top), and the accuracy curves
    against time, one panel per worker count with the one-process run(s) in every panel."""
    runs = conv["runs"]
    target = conv["target"]
    policies = list(dict.fromkeys(averaging_policy(r) for r in runs))
    styles = dict(zip(policies, series_styles(len(policies)), strict=True))
    spark_workers = list(dict.fromkeys(r["workers"] for r in runs if r["workers"] is not None))
    local = [r for r in runs if r["workers"] is None and r["curve"]]
    panels = [
        (f"Spark, {w} workers", local + [r for r in runs if r["workers"] == w and r["curve"]])
        for w in spark_workers
    ] or [("one process", local)]
    panels = [(title, group) for title, group in panels if group]
    with _pyplot() as plt:
        fig = plt.figure(
            figsize=(12, 2.2 + 0.3 * len(runs) + (4.2 if panels else 0)), layout="constrained"
        )
        top, bottom = (
            fig.subfigures(2, 1, height_ratios=(1.0 + 0.3 * len(runs), 3.6))
            if panels
            else (fig, None)
        )
        _convergence_bars(top, runs, target)
        if panels:
            _convergence_curves(bottom, panels, styles, target)
        fig.suptitle(
            f"Convergence against the averaging frequency: {conv['dataset'] or 'dataset'}",
            fontsize=12,
        )
    return fig


def _convergence_bars(fig: Any, runs: list[dict], target: float | None) -> None:
    positions = list(range(len(runs)))
    ax_acc, ax_time = fig.subplots(1, 2, sharey=True)
    accuracies = [r["accuracy"] for r in runs]
    ax_acc.plot(
        [math.nan if a is None else a for a in accuracies],
        positions,
        linestyle="none",
        marker="o",
        color=COLOURS[0],
    )
    known = [a for a in accuracies if a is not None] + ([target] if target is not None else [])
    low = min(known, default=0.0)
    ax_acc.set_xlim(max(0.0, low - 0.1 * (1.0 - low) - 0.005), 1.0)
    if target is not None:
        ax_acc.axvline(target, color="black", linestyle="--", linewidth=1)
        ax_acc.annotate(
            f"target {target:g}",
            (target, 1.0),
            (-3, -3),
            xycoords=("data", "axes fraction"),
            textcoords="offset points",
            ha="right",
            va="top",
        )
    ax_acc.set_yticks(positions, [r["label"] for r in runs])
    ax_acc.invert_yaxis()
    ax_acc.set_xlabel("final test accuracy (fraction correct)")
    ax_acc.set_title("Final test accuracy")
    reached = [r["seconds_to_target"] for r in runs]
    ax_time.barh(positions, [s or 0.0 for s in reached], 0.6, color=COLOURS[0])
    for position, seconds in zip(positions, reached, strict=True):
        ax_time.annotate(
            "not reached" if seconds is None else f"{seconds:.1f} s",
            (seconds or 0.0, position),
            (4, 0),
            textcoords="offset points",
            va="center",
        )
    ax_time.margins(x=0.15)
    ax_time.set_xlabel("training seconds until the target accuracy (s)")
    ax_time.set_title("Time to the target accuracy" + (f" {target:g}" if target else ""))
    for ax in (ax_acc, ax_time):
        ax.grid(axis="y", visible=False)


def _convergence_curves(
    fig: Any, panels: list[tuple[str, list[dict]]], styles: dict, target: float | None
) -> None:
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    legend: dict[str, Any] = {}
    target_line = None
    for ax, (title, group) in zip(axes, panels, strict=True):
        for run in group:
            policy = averaging_policy(run)
            seconds, accuracy = zip(*run["curve"], strict=True)
            (line,) = ax.plot(
                seconds, accuracy, label=policy, markevery=0.08, markersize=5, **styles[policy]
            )
            legend.setdefault(policy, line)
        if target is not None:
            target_line = ax.axhline(target, color="black", linestyle="--", linewidth=1)
        # A log time axis spreads the early rounds where the runs differ; a curve that starts
        # at 0 s (a run with no time recorded before its first score) keeps a linear one.
        log = all(seconds > 0 for run in group for seconds, _ in run["curve"])
        ax.set_xscale("log" if log else "linear")
        ax.set_title(title)
        ax.set_xlabel("training seconds" + (" (s, log scale)" if log else " (s)"))
    axes[0].set_ylabel("test accuracy (fraction correct)")
    handles = list(legend.values())
    labels = list(legend)
    if target_line is not None:
        handles.append(target_line)
        labels.append(f"target {target:g}")
    fig.legend(handles, labels, loc="outside right upper", title="run")
