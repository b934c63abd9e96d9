"""Check a DataFrame against the trainer's input schema before any training work.

Everything here is Spark SQL (higher-order functions run in the JVM, not in Python): one job
profiles the data (row count, feature count, largest label and token id, smallest label and
the number of distinct integer labels); the rules a row must keep are then one SQL column that
the encoding job computes on its way (:class:`RowRules`), so checking costs no job of its
own. A user gets one clear error naming the column and the problem, with an example row,
before any round runs; or, with ``invalid_rows="skip"``, the bad rows are dropped and counted
in the job summary. Class labels whose number is taken from the data must be exactly
``0..K-1``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sparklstm.model.config import ModelConfig

__all__ = [
    "Columns",
    "DataProfile",
    "profile_data",
    "RULE_COLUMN",
    "RowRules",
    "row_rules",
    "check_class_labels",
    "model_sizes",
    "pair_sizes",
    "default_task",
]

logger = logging.getLogger(__name__)

_NUMERIC = ("byte", "short", "integer", "long", "float", "double", "decimal")
_INTEGRAL = ("byte", "short", "integer", "long")
_LABELS_SHOWN = 10  # distinct labels an error message lists


@dataclass(frozen=True)
class Columns:
    """Column names of a training or inference DataFrame."""

    features: str = "features"
    label: str | None = "label"
    length: str | None = None
    # Sequence-to-sequence pairs: features is the source, label the target sequence, and
    # this the target's integer length column (optional, like length for the source).
    target_length: str | None = None

    def selected(self) -> list[str]:
        names = (self.features, self.label, self.length, self.target_length)
        return [c for c in names if c is not None]


@dataclass(frozen=True)
class DataProfile:
    """What one pass over the data found."""

    rows: int
    sequence_kind: str  # "multivariate" | "univariate" | "tokens"
    num_features: int | None  # inner array size of a multivariate column (first row)
    max_token: int | None
    label_kind: str | None  # "int" | "float" | "array" | None
    max_label: float | None
    label_width: int | None  # size of an array label (vector target or per-step labels)
    skipped: dict[str, int] = field(default_factory=dict)
    label_col: str | None = None
    min_label: float | None = None
    # Integer labels, one per row: how many distinct values (exact), and, when they are not
    # 0..max_label (a gap, or no 0), the smallest few of them for error messages.
    num_labels: int | None = None
    some_labels: tuple[int, ...] = ()

    @property
    def labels_are_classes(self) -> bool | None:
        """Whether the integer labels are exactly ``0..max_label`` (None: not known here)."""
        if self.num_labels is None or self.max_label is None or self.min_label is None:
            return None
        return self.min_label == 0 and self.num_labels == int(self.max_label) + 1


def _type_name(data_type: Any) -> str:
    return data_type.typeName()


def quoted_name(name: str) -> str:
    """``name`` quoted for a Spark SQL expression or ``F.col`` (dots and backticks kept)."""
    return "`" + name.replace("`", "``") + "`"


_q = quoted_name


def sequence_kind_of(schema: Any, column: str) -> str:
    """``"multivariate"``, ``"univariate"`` or ``"tokens"``; TypeError naming the column."""
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, column, "features").dataType
    if isinstance(data_type, ArrayType):
        inner = data_type.elementType
        if isinstance(inner, ArrayType) and _type_name(inner.elementType) in _NUMERIC:
            return "multivariate"
        if _type_name(inner) in _INTEGRAL:
            return "tokens"
        if _type_name(inner) in _NUMERIC:
            return "univariate"
    raise TypeError(
        f"features column {column!r} has type {data_type.simpleString()}; expected "
        "array<array<float>> ([time][feature]), array<float> or a Spark ML Vector (univariate) "
        "or array<int> (tokens)"
    )


def _field(schema: Any, column: str, role: str) -> Any:
    if column not in schema.fieldNames():
        raise ValueError(f"{role} column {column!r} not found; columns are {schema.fieldNames()}")
    return schema[column]


def _label_kind(schema: Any, column: str) -> str:
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, column, "label").dataType
    name = _type_name(data_type)
    if name in _INTEGRAL:
        return "int"
    if name in _NUMERIC:
        return "float"
    if isinstance(data_type, ArrayType) and _type_name(data_type.elementType) in _NUMERIC:
        return "array"
    raise TypeError(
        f"label column {column!r} has type {data_type.simpleString()}; expected a number "
        "(class index or target) or an array of numbers (vector target or per-step labels)"
    )


def profile_data(df: Any, columns: Columns) -> DataProfile:
    """Types and sizes of the data, from its schema and one aggregation job."""
    from pyspark.sql import functions as F

    schema = df.schema
    kind = sequence_kind_of(schema, columns.features)
    label_kind = _label_kind(schema, columns.label) if columns.label else None
    if columns.length is not None:
        length_type = _type_name(_field(schema, columns.length, "length").dataType)
        if length_type not in _INTEGRAL:
            raise TypeError(f"length column {columns.length!r} must be integer, got {length_type}")
    f = _q(columns.features)
    aggregates = [F.count(F.lit(1)).alias("rows")]
    if kind == "multivariate":
        aggregates.append(F.expr(f"first(size(try_element_at({f}, 1)), true)").alias("width"))
    if kind == "tokens":
        aggregates.append(F.expr(f"max(array_max({f}))").alias("max_token"))
    if label_kind in ("int", "float"):
        aggregates.append(F.max(F.col(columns.label)).alias("max_label"))
        aggregates.append(F.min(F.col(columns.label)).alias("min_label"))
        if label_kind == "int":
            # Exact; integer labels only (a float target's distinct values would cost a shuffle
            # of the whole column, for a count no regression uses).
            aggregates.append(F.count_distinct(F.col(columns.label)).alias("num_labels"))
    elif label_kind == "array":
        lab = _q(columns.label)
        aggregates.append(F.expr(f"max(array_max({lab}))").alias("max_label"))
        aggregates.append(F.expr(f"min(array_min({lab}))").alias("min_label"))
        aggregates.append(F.expr(f"max(size({lab}))").alias("label_width"))
    row = df.agg(*aggregates).first().asDict()
    rows = int(row["rows"])
    if rows == 0:
        raise ValueError("the input data is empty (0 rows)")
    width = row.get("width")
    if kind == "multivariate" and (width is None or width < 1):
        raise ValueError(
            f"features column {columns.features!r}: could not read the feature count from the "
            "first step of any row (empty or null inner arrays)"
        )
    max_label, min_label = row.get("max_label"), row.get("min_label")
    num_labels = None if row.get("num_labels") is None else int(row["num_labels"])
    some_labels: tuple[int, ...] = ()
    if num_labels and (min_label != 0 or num_labels != int(max_label) + 1):
        # Only for labels that are not 0..max (an error unless the class count is given): the
        # smallest few, for the message (one more small job, on this path only).
        label = F.col(columns.label)
        smallest = df.select(label).where(label.isNotNull()).distinct().orderBy(label)
        some_labels = tuple(int(r[0]) for r in smallest.limit(_LABELS_SHOWN).collect())
    return DataProfile(
        rows=rows,
        sequence_kind=kind,
        num_features=int(width) if width is not None else None,
        max_token=None if row.get("max_token") is None else int(row["max_token"]),
        label_kind=label_kind,
        max_label=None if max_label is None else float(max_label),
        label_width=None if row.get("label_width") is None else int(row["label_width"]),
        label_col=columns.label,
        min_label=None if min_label is None else float(min_label),
        num_labels=num_labels,
        some_labels=some_labels,
    )


def _shown_labels(profile: DataProfile) -> str:
    labels = [str(v) for v in profile.some_labels]
    count = profile.num_labels or 0
    if count > len(labels) or count > _LABELS_SHOWN:
        labels = labels[: _LABELS_SHOWN - 1] + ["...", str(int(profile.max_label or 0))]
    return ", ".join(labels)


def check_class_labels(profile: DataProfile, task: str, head: str) -> None:
    """Raise ValueError unless one-label-per-row class labels are exactly ``0..K-1``.

    For use when the number of classes is taken from the data (``K = max label + 1``): a
    label far above the others (``{0, 1, 2, 3, 1000}`` would make 1001 classes), a class that
    no row has, or no class 0 is then almost surely a labelling mistake. The message names the
    column and the distinct labels, and how to remap them or give the number of classes.
    Per-step labels (``head="all"``) are not checked: a text slice need not hold every token.
    """
    if task != "classification" or head != "last" or profile.label_kind != "int":
        return
    if profile.labels_are_classes is not False:
        return
    count, largest = profile.num_labels or 0, int(profile.max_label or 0)
    smallest = int(profile.min_label or 0)
    if smallest < 0:
        problem = f"class labels must be 0..K-1, and {smallest} is negative"
    else:
        problem = (
            f"taken as classes 0..{largest} they make {largest + 1} classes, only {count} of "
            "them present" + (" (no label 0)" if smallest > 0 else "")
        )
    raise ValueError(
        f"label column {profile.label_col!r} has {count} distinct label"
        f"{'s' if count != 1 else ''} ({_shown_labels(profile)}); {problem}. Remap the labels "
        f"to 0..{count - 1} (e.g. with pyspark.ml.feature.StringIndexer), or give the number "
        "of classes explicitly "
        "(output_size; numClasses for LSTMClassifier; --num-classes in jobs/train.py)"
    )


_UNSAID = object()


def _classes_given(model: Any) -> bool:
    """Whether a starting model or model options fix ``output_size`` (the number of classes)."""
    if model is None:
        return False
    if isinstance(model, Mapping):
        return model.get("output_size") is not None
    return True  # a ModelConfig or SequenceModel


def model_sizes(profile: DataProfile, task: str, head: str, model: Any = _UNSAID) -> dict[str, int]:
    """``input_size`` or ``vocab_size``, and ``output_size``, as the data implies.

    ``model`` is what the caller starts from (``fit_distributed``'s ``model``: a SequenceModel,
    ModelConfig, dict of options or None). When it is given and leaves ``output_size`` to the
    data, the class labels must be exactly ``0..K-1`` (:func:`check_class_labels`, ValueError
    otherwise); when it is not given, the class labels are not checked here.
    """
    if model is not _UNSAID and not _classes_given(model):
        check_class_labels(profile, task, head)
    sizes = _source_sizes(profile, "vocab_size")
    if profile.label_kind is not None:
        if task == "classification":
            sizes["output_size"] = max(2, int(profile.max_label or 0) + 1)
        elif profile.label_kind == "array" and head == "last":
            sizes["output_size"] = int(profile.label_width or 1)
        else:
            sizes["output_size"] = 1
    return sizes


def _source_sizes(profile: DataProfile, vocab_key: str) -> dict[str, int]:
    """The input side's size: ``{vocab_key: max id + 1}`` for token sequences, else
    ``{"input_size": features per step}``."""
    if profile.sequence_kind == "tokens":
        return {vocab_key: (profile.max_token or 0) + 1}
    width = profile.num_features if profile.sequence_kind == "multivariate" else 1
    return {"input_size": width}


def pair_sizes(profile: DataProfile, target_task: str) -> dict[str, int]:
    """A seq2seq model's sizes as the pairs imply: ``source_vocab_size`` (max source id + 1)
    or ``input_size``, and ``target_vocab_size`` (max target id + 1, at least 3: pad, start,
    end) for integer targets (``target_task`` "classification") or ``output_size`` 1."""
    sizes = _source_sizes(profile, "source_vocab_size")
    if profile.label_kind is not None:
        if target_task == "classification":
            sizes["target_vocab_size"] = max(3, int(profile.max_label or 0) + 1)
        else:
            sizes["output_size"] = 1
    return sizes


_FINITE = "(v IS NOT NULL AND NOT isnan(v) AND abs(v) != double('Infinity'))"


def _rules(columns: Columns, profile: DataProfile, config: Any) -> list[tuple[str, str]]:
    """``(problem description, SQL condition that is true for a bad row)``."""
    if config.head == "seq2seq":
        return _pair_rules(columns, profile, config)
    rules = _sequence_rules(
        "features", columns.features, profile.sequence_kind, config.input_size, config.vocab_size
    )
    return rules + _label_rules(columns, profile, config)


def _sequence_rules(
    role: str, column: str, kind: str, width: int | None, vocab_size: int | None
) -> list[tuple[str, str]]:
    """The rules of one sequence column: not null, not empty, and finite values of ``width``
    per step or token ids in ``[0, vocab_size)``."""
    f = _q(column)
    finite = _FINITE
    rules = [
        (f"{role} column {column!r} is null", f"{f} IS NULL"),
        (f"{role} column {column!r} holds an empty sequence", f"size({f}) = 0"),
    ]
    if kind == "multivariate":
        rules.append(
            (
                f"{role} column {column!r} has steps whose size is not the model's "
                f"input_size {width} (ragged or null inner arrays)",
                f"exists({f}, s -> s IS NULL OR size(s) != {width})",
            )
        )
        rules.append(
            (
                f"{role} column {column!r} holds null, NaN or Inf values",
                f"exists({f}, s -> exists(s, v -> NOT {finite}))",
            )
        )
    elif kind == "univariate":
        rules.append(
            (
                f"{role} column {column!r} holds null, NaN or Inf values",
                f"exists({f}, v -> NOT {finite})",
            )
        )
    else:
        rules.append(
            (
                f"{role} column {column!r} holds token ids outside [0, vocab_size={vocab_size})",
                f"exists({f}, v -> v IS NULL OR v < 0 OR v >= {vocab_size})",
            )
        )
    return rules


def _length_rule(role: str, length: str, sequence: str) -> tuple[str, str]:
    n = _q(length)
    return (
        f"{role} column {length!r} is null, < 1 or longer than the sequence",
        f"{n} IS NULL OR {n} < 1 OR {n} > size({_q(sequence)})",
    )


def _pair_rules(columns: Columns, profile: DataProfile, config: Any) -> list[tuple[str, str]]:
    """Sequence-to-sequence pairs: the source's rules, then the target sequence's."""
    source_vocab = config.source_vocab_size
    rules = _sequence_rules(
        "source", columns.features, profile.sequence_kind, config.input_size, source_vocab
    )
    if columns.length is not None:
        rules.append(_length_rule("source length", columns.length, columns.features))
    if columns.label is None:
        return rules
    if profile.label_kind != "array":
        raise TypeError(
            f"target column {columns.label!r} must hold sequences (array<int> token ids or "
            "array<float> values), one per row"
        )
    kind = "tokens" if config.token_target else "univariate"
    rules += _sequence_rules(
        "target", columns.label, kind, config.output_size, config.target_vocab_size
    )
    if columns.target_length is not None:
        rules.append(_length_rule("target length", columns.target_length, columns.label))
    return rules


def _label_rules(columns: Columns, profile: DataProfile, config: Any) -> list[tuple[str, str]]:
    """The rules of a classifier's or regressor's label column (and the length column)."""
    f = _q(columns.features)
    finite = _FINITE
    rules = []
    length = f"size({f})"
    if columns.length is not None:
        n = _q(columns.length)
        rules.append(
            (
                f"length column {columns.length!r} is null, < 1 or longer than the sequence",
                f"{n} IS NULL OR {n} < 1 OR {n} > size({f})",
            )
        )
        length = n
    if columns.label is None:
        return rules
    lab = _q(columns.label)
    rules.append((f"label column {columns.label!r} is null", f"{lab} IS NULL"))
    classes = config.output_size
    in_range = f"(v IS NOT NULL AND v >= 0 AND v < {classes} AND v = floor(v))"
    if config.head == "all":
        if profile.label_kind != "array":
            raise TypeError(
                f"label column {columns.label!r}: head='all' needs one label per step (an array)"
            )
        rules.append(
            (
                f"label column {columns.label!r} has fewer per-step labels than the sequence",
                f"size({lab}) < {length}",
            )
        )
        check = in_range if config.task == "classification" else finite
        what = f"class ids outside [0, {classes})" if config.task == "classification" else "NaN"
        rules.append(
            (
                f"label column {columns.label!r} holds null or {what} values",
                f"exists(slice({lab}, 1, {length}), v -> NOT {check})",
            )
        )
    elif config.task == "classification":
        if profile.label_kind == "array":
            raise TypeError(
                f"label column {columns.label!r} is an array; head='last' classification needs "
                "one class index per row"
            )
        rules.append(
            (
                f"label column {columns.label!r} holds values that are not class ids in "
                f"[0, output_size={classes})",
                _scalar_class_rule(lab, classes),
            )
        )
    elif profile.label_kind == "array":
        rules.append(
            (
                f"label column {columns.label!r} holds vectors whose size is not output_size "
                f"{config.output_size}, or null/NaN/Inf values",
                f"size({lab}) != {config.output_size} OR exists({lab}, v -> NOT {finite})",
            )
        )
    else:
        rules.append(
            (
                f"label column {columns.label!r} holds NaN or Inf values",
                f"isnan({lab}) OR abs({lab}) = double('Infinity')",
            )
        )
    return rules


def _scalar_class_rule(label: str, classes: int) -> str:
    return f"NOT ({label} >= 0 AND {label} < {classes} AND {label} = floor({label}))"


# The column the encoder reads to drop and count invalid rows: 0 for a good row, else the
# 1-based index of the first rule the row breaks.
RULE_COLUMN = "_sparklstm_broken_rule"


@dataclass(frozen=True)
class RowRules:
    """The rules a row must keep, checked while the data is encoded (no job of their own).

    :meth:`column` numbers the first rule each row breaks; the encoder drops such rows and
    counts them per rule (:func:`sparklstm.spark.partitions.cache_chunks`), and
    :meth:`settle` then raises the one-line error (``invalid_rows="error"``) or logs and
    returns the counts (``"skip"``). Rules are checked in order and a row counts for the first
    one it breaks, so that a null sequence is not also reported as empty."""

    problems: tuple[str, ...]
    conditions: tuple[str, ...]  # SQL, true (or null) for a bad row

    def column(self) -> Any:
        from pyspark.sql import functions as F

        cases = " ".join(
            f"WHEN coalesce({condition}, true) THEN {i + 1}"
            for i, condition in enumerate(self.conditions)
        )
        return F.expr(f"CASE {cases} ELSE 0 END" if cases else "0").cast("int")

    def settle(
        self, df: Any, columns: Columns, counts: list[int], invalid_rows: str
    ) -> dict[str, int]:
        """``{problem: rows}`` of the rules broken (``counts[i]`` rows broke rule ``i``
        first). ``invalid_rows="error"`` raises ValueError for the first rule broken, with an
        example row of ``df`` (one small job, on this path only)."""
        from pyspark.sql import functions as F

        broken = {self.problems[i]: int(n) for i, n in enumerate(counts) if n}
        if not broken:
            return {}
        if invalid_rows == "error":
            index = next(i for i, n in enumerate(counts) if n)
            condition = f"coalesce({self.conditions[index]}, true)"
            example = df.filter(F.expr(condition)).select(*columns.selected()).first()
            shown = {k: _short(v) for k, v in example.asDict().items()} if example else {}
            raise ValueError(
                f"{self.problems[index]}: {counts[index]} row(s), e.g. {shown}. Fix the data, "
                "or pass invalid_rows='skip' to leave such rows out (they are counted in the "
                "summary)"
            )
        logger.warning("skipping %d invalid row(s): %s", sum(broken.values()), broken)
        return broken


def row_rules(columns: Columns, profile: DataProfile, config: ModelConfig) -> RowRules:
    """The rules of the trainer's input schema for this data and model (see :class:`RowRules`)."""
    rules = _rules(columns, profile, config)
    return RowRules(tuple(p for p, _ in rules), tuple(c for _, c in rules))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def default_task(schema: Any, label_col: str) -> str:
    """``"classification"`` for integer labels (or arrays of them), else ``"regression"``."""
    from pyspark.sql.types import ArrayType

    data_type = _field(schema, label_col, "label").dataType
    while isinstance(data_type, ArrayType):
        data_type = data_type.elementType
    return "classification" if _type_name(data_type) in _INTEGRAL else "regression"
