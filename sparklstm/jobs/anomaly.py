"""Train an anomaly detector on normal series, score series, and evaluate the flags.

    spark-submit jobs/anomaly.py --normal data/normal --data data/streams \\
        --label-col is_anomaly --model-out runs/anomaly-model \\
        --scores-out runs/anomaly-scores --output runs/anomaly-metrics.json

Both inputs are Parquet tables with one series per row (``--features-col``, ``array<double>``).
``--normal`` trains :class:`~sparklstm.spark.ml.LSTMAnomalyDetector` (every flag of the
detector group is one of its Params, from the options' one definition: ``--hidden-sizes``,
``--window-length``, ``--loss``, ``--score-window``, ``--false-alarm-rate``, ``--epochs``,
...); ``--data`` is scored by the fitted model's ``transform`` (every row kept, with the step
scores, window scores and flags as arrays) and written to ``--scores-out``. With
``--label-col`` (an ``array<int>`` of 0/1 per step, as long as the series) the job reports, over
all scored steps, precision, recall, F1 and the false-alarm rate of the flags, the area under
the precision-recall curve (average precision) of the step and of the window scores, and for
the series with exactly one labelled range the UCR archive's top-score hit (the top-scored
step within ``max(range length, 100)`` steps of the range): all computed by Spark SQL
aggregations, nothing per step collected to the driver. The figures equal
:mod:`sparklstm.anomaly.metrics` on the same arrays.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

from sparklstm.anomaly.metrics import UCR_TOLERANCE
from sparklstm.cli import (
    JobArgumentParser,
    add_option_flags,
    add_session_options,
    check_input_path,
    invoked_name,
    run_job,
    write_json,
)
from sparklstm.spark.ml.anomaly import anomaly_param_options
from sparklstm.spark.session import get_session

__all__ = ["anomaly_metrics", "command", "main"]

PROG = "anomaly.py"
COMMAND = "sparklstm-anomaly"
SECTION = "detector"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = JobArgumentParser(prog=prog, description=__doc__)
    add_session_options(parser)
    data = parser.add_argument_group("data")
    data.add_argument("--normal", required=True, metavar="PATH", help="normal series (Parquet)")
    data.add_argument("--data", required=True, metavar="PATH", help="series to score (Parquet)")
    data.add_argument(
        "--features-col", default="features", help="series column (default: features)"
    )
    data.add_argument(
        "--label-col", default=None, help="per-step 0/1 labels of --data (optional): evaluate"
    )
    data.add_argument(
        "--tolerance",
        type=int,
        default=UCR_TOLERANCE,
        help=f"top-score hit: steps allowed each side of the range (default: {UCR_TOLERANCE})",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--model-out", metavar="DIR", help="save the fitted model here")
    output.add_argument("--scores-out", metavar="DIR", help="write the scored rows (Parquet)")
    output.add_argument("--output", metavar="FILE", help="metrics JSON file (also printed)")
    output.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_option_flags(parser.add_argument_group("detector"), anomaly_param_options(), SECTION)
    parser.add_argument("--seed", type=int, default=0, help="the detector's seed (default: 0)")
    return parser


def _detector_params(args: argparse.Namespace) -> dict[str, Any]:
    names = {option.name: option.param_name for option in anomaly_param_options()}
    given = {
        key.split(".", 1)[1]: value
        for key, value in vars(args).items()
        if key.startswith(f"{SECTION}.")
    }
    return {names[name]: value for name, value in given.items()}


def anomaly_metrics(
    scored: Any,
    label_col: str,
    score_col: str,
    window_col: str,
    flag_col: str,
    tolerance: int = UCR_TOLERANCE,
) -> dict[str, Any]:
    """The metrics of scored rows against per-step 0/1 labels, by Spark SQL aggregations (see
    the module's documentation); equal to :mod:`sparklstm.anomaly.metrics`'s on the arrays."""
    q = {name: f"`{name}`" for name in (label_col, score_col, window_col, flag_col)}
    label, score, window, flag = (q[label_col], q[score_col], q[window_col], q[flag_col])
    rows = scored.where(f"{label} IS NOT NULL AND {score} IS NOT NULL")
    bad = rows.where(f"size({label}) != size({score}) OR exists({label}, v -> v NOT IN (0, 1))")
    if bad.limit(1).count():
        raise ValueError(
            f"label column {label_col!r}: every row needs one 0/1 label per step of its series"
        )
    named = rows.selectExpr(f"{label} AS y", f"{score} AS s", f"{window} AS w", f"{flag} AS f")
    steps = named.selectExpr("explode(arrays_zip(y, s, w, f)) AS p").selectExpr(
        "p.y AS y", "p.s AS s", "p.w AS w", "p.f AS f"
    )
    counts = steps.selectExpr(
        "sum(CASE WHEN f AND y = 1 THEN 1 ELSE 0 END) AS tp",
        "sum(CASE WHEN f AND y = 0 THEN 1 ELSE 0 END) AS fp",
        "sum(CASE WHEN NOT f AND y = 1 THEN 1 ELSE 0 END) AS fn",
        "sum(CASE WHEN NOT f AND y = 0 THEN 1 ELSE 0 END) AS tn",
    ).first()
    tp, fp, fn, tn = (int(counts[k] or 0) for k in ("tp", "fp", "fn", "tn"))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    result: dict[str, Any] = {
        "steps": tp + fp + fn + tn,
        "labelled_steps": tp + fn,
        "at_threshold": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "false_alarm_rate": fp / (fp + tn) if fp + tn else 0.0,
        },
    }
    for kind, column in (("step", "s"), ("window", "w")):
        result[f"{kind}_average_precision"] = _average_precision(steps, column, tp + fn)
    result["top_score"] = _top_hits(rows, label, score, tolerance)
    return result


def _average_precision(steps: Any, column: str, positives: int) -> float | None:
    """``Σ_k (R_k - R_{k-1}) P_k`` over the distinct scores from the highest down (NaN scores
    rank lowest, as :func:`~sparklstm.anomaly.metrics.average_precision` ranks them)."""
    if positives == 0:
        return None
    ranked = steps.selectExpr(
        f"CASE WHEN isnan({column}) OR {column} IS NULL THEN CAST('-Infinity' AS DOUBLE) "
        f"ELSE {column} END AS v",
        "y",
    )
    per_score = ranked.groupBy("v").agg({"y": "sum", "*": "count"})
    per_score = per_score.withColumnRenamed("sum(y)", "hits").withColumnRenamed("count(1)", "n")
    cumulative = "OVER (ORDER BY v DESC ROWS UNBOUNDED PRECEDING)"
    row = (
        per_score.selectExpr(
            "hits", f"sum(hits) {cumulative} AS tp", f"sum(n) {cumulative} AS seen"
        )
        .selectExpr(f"sum(hits / {positives} * tp / seen) AS ap")
        .first()
    )
    return float(row["ap"])


def _top_hits(rows: Any, label: str, score: str, tolerance: int) -> dict[str, Any]:
    """Per series with exactly one labelled range: the first top-scored step (NaN skipped)
    and whether it lies within ``max(range length, tolerance)`` steps of the range."""
    per_row = rows.selectExpr(
        f"{label} AS y",
        f"{score} AS s",
        f"size(filter(sequence(1, size({label})), i -> element_at({label}, i) = 1 AND "
        f"(i = 1 OR element_at({label}, i - 1) = 0))) AS ranges",
    ).where("ranges = 1")
    per_row = per_row.selectExpr(
        "array_position(y, 1) - 1 AS first",
        "size(y) - array_position(reverse(y), 1) AS last",
        "array_position(s, array_max(filter(s, v -> NOT isnan(v)))) - 1 AS top",
    )
    judged = per_row.selectExpr(
        "first",
        "last",
        "top",
        f"greatest(last - first + 1, {int(tolerance)}) AS slack",
    ).selectExpr(
        "top >= first - slack AND top <= last + slack AS hit",
        "top >= first AND top <= last AS inside",
    )
    totals = judged.selectExpr(
        "count(*) AS series",
        "sum(CASE WHEN hit THEN 1 ELSE 0 END) AS hits",
        "sum(CASE WHEN inside THEN 1 ELSE 0 END) AS inside",
    ).first()
    return {
        "series": int(totals["series"]),
        "hits": int(totals["hits"] or 0),
        "hits_strict": int(totals["inside"] or 0),
        "tolerance": int(tolerance),
    }


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    from sparklstm.spark.ml import LSTMAnomalyDetector

    args = _parser(prog).parse_args(argv)
    estimator = LSTMAnomalyDetector(
        featuresCol=args.features_col, seed=args.seed, **_detector_params(args)
    )
    estimator._model_options()  # a bad combination fails here, before Spark starts
    for flag, path in (("--normal", args.normal), ("--data", args.data)):
        check_input_path(flag, path)
    started = time.perf_counter()
    spark = get_session("sparklstm-anomaly", master=args.master, remote=args.remote)
    model = estimator.fit(spark.read.parquet(args.normal))
    if args.model_out:
        writer = model.write()
        (writer.overwrite() if args.overwrite else writer).save(args.model_out)
    scored = model.transform(spark.read.parquet(args.data))
    if args.scores_out:
        scored.write.mode("overwrite" if args.overwrite else "errorifexists").parquet(
            args.scores_out
        )
        scored = spark.read.parquet(args.scores_out)
    report: dict[str, Any] = {
        "threshold": model.threshold,
        "rounds": len(model.history),
        "score": model.anomalyDetector.score_name,
        "score_window": model.anomalyDetector.options.score_window,
    }
    if args.label_col:
        if args.label_col not in scored.columns:
            raise ValueError(f"--label-col {args.label_col!r} not found; columns: {scored.columns}")
        report["metrics"] = anomaly_metrics(
            scored,
            args.label_col,
            model.getAnomalyScoreCol(),
            model.getWindowScoreCol(),
            model.getFlagCol(),
            args.tolerance,
        )
    report["seconds"] = time.perf_counter() - started
    print("metrics: " + json.dumps(report))
    if args.output:
        write_json(args.output, report)
    return 0


def command() -> None:
    """The ``sparklstm-anomaly`` command (and ``spark-submit jobs/anomaly.py``)."""
    run_job(lambda argv: main(argv, invoked_name(COMMAND)), invoked_name(COMMAND))
