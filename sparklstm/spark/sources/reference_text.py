"""The reference project's labelled token text, read with a word-vector dictionary.

Each ``label<TAB>tok1,tok2,...`` line becomes one example: its tokens are looked up in the
dictionary (``word<TAB>v1,v2,...`` lines, checked in one aggregation job by
:func:`_read_dictionary`) with a join in Spark SQL, and the result is a sequence of word
vectors with an ``int`` label (:func:`_read_reference_text`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sparklstm.spark.sources.delimited import _ROW, _bad_float, _check, _parse_list
from sparklstm.spark.sources.files import _load, _Names, _short, _spark_reading

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

logger = logging.getLogger(__name__)


def _blank(text: Column) -> Column:
    """True for text holding only whitespace (tabs too, as ``str.strip`` sees it; Spark's
    ``trim`` removes spaces only)."""
    return ~text.rlike("(?U)\\S")


def _split_tab(text: Column) -> tuple[Column, Column]:
    from pyspark.sql import functions as F

    parts = F.split(text, "\t", 2)
    return F.get(parts, 0), F.get(parts, 1)


def _read_dictionary(
    spark: SparkSession, dictionary: str, unknown_token: str, names: _Names
) -> tuple[DataFrame, list[float]]:
    """The dictionary as ``(_word, _vector)`` rows, and the vector for unknown tokens."""
    from pyspark.sql import functions as F

    lines = _load(dictionary, "text", spark.read.text, names, "dictionary")
    lines = lines.filter(~_blank(F.col("value")))
    word, values = _split_tab(F.col("value"))
    vector = _parse_list(values, ",", "float")
    entries = lines.select(
        F.col("value"), word.alias("_word"), values.alias("_values"), vector.alias("_vector")
    )
    width = F.size(F.col("_vector"))
    where = f"dictionary {dictionary}"
    problems = [
        ("lines without a tab (expected 'word<TAB>v1,v2,...')", F.col("_values").isNull()),
        ("lines with an empty word", F.col("_word") == ""),
        ("lines with values that are not finite numbers", F.exists(F.col("_vector"), _bad_float)),
    ]
    # A line counts for the first problem it has, as in _check.
    conditions, earlier = [], F.lit(False)
    for _, condition in problems:
        condition = F.coalesce(condition, F.lit(True))
        conditions.append(condition & ~earlier)
        earlier = earlier | condition
    numbered = entries.withColumn(_ROW, F.monotonically_increasing_id())
    with _spark_reading(dictionary, "text", names, "dictionary"):
        result = numbered.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count_distinct(F.col("_word")).alias("words"),
            F.min(width).alias("min_width"),
            F.max(width).alias("max_width"),
            F.first(F.when(F.col("_word") == unknown_token, F.col("_vector")), True).alias("unk"),
            *[F.sum(F.when(c, 1).otherwise(0)).alias(f"n{i}") for i, c in enumerate(conditions)],
            *[
                F.min_by(F.col("value"), F.when(c, F.col(_ROW))).alias(f"e{i}")
                for i, c in enumerate(conditions)
            ],
        ).first()
    rows = int(result["rows"])
    if rows == 0:
        raise ValueError(f"{where} holds no word vectors (the file is empty)")
    found = [
        f"{problem}: {rows_bad} of {rows} line(s), first {_short(str(result[f'e{i}']))!r}"
        for i, (problem, _) in enumerate(problems)
        if (rows_bad := int(result[f"n{i}"] or 0))
    ]
    if found:
        raise ValueError(f"{where}: " + "; ".join(found))
    if result["min_width"] != result["max_width"]:
        raise ValueError(
            f"{where}: vectors have between {result['min_width']} and {result['max_width']} "
            "values; every vector must have the same dimension"
        )
    if int(result["words"]) != rows:
        duplicate = (
            entries.groupBy("_word").count().filter(F.col("count") > 1).select("_word").first()
        )
        raise ValueError(
            f"{where}: {rows - int(result['words'])} duplicate word(s), e.g. {duplicate[0]!r}"
        )
    dim = int(result["max_width"])
    unknown = result["unk"]
    if unknown is None:
        logger.info("%s has no %r row: unknown tokens get a zero vector", dictionary, unknown_token)
        unknown = [0.0] * dim
    logger.info("dictionary %s: %d words of dimension %d", dictionary, rows, dim)
    return entries.select("_word", "_vector"), [float(v) for v in unknown]


def _read_reference_text(
    spark: SparkSession,
    path: str,
    dictionary: str,
    features_col: str,
    label_col: str | None,
    length_col: str | None,
    unknown_token: str,
    broadcast_dictionary: bool,
    validate: bool,
    names: _Names,
) -> DataFrame:
    from pyspark.sql import functions as F

    lines = _load(path, "text", spark.read.text, names)
    lines = lines.filter(~_blank(F.col("value")))
    label_text, rest = _split_tab(F.col("value"))
    tokens = F.split(rest, ",")
    examples = lines.select(
        F.col("value"),
        label_text.try_cast("int").alias("_label"),
        rest.alias("_rest"),
        tokens.alias("_tokens"),
    )
    where = f"{path} (format 'text', lines 'label<TAB>tok1,tok2,...')"
    if validate:
        problems = [
            ("lines without a tab", F.col("_rest").isNull()),
            ("labels that are not integers", F.col("_label").isNull()),
            ("empty token lists", _blank(F.col("_rest"))),
            ("empty tokens (two commas in a row?)", F.array_contains(F.col("_tokens"), "")),
        ]
        with _spark_reading(path, "text", names):
            rows = _check(examples, problems, F.col("value"), where)
        logger.info("read %d examples from %s", rows, path)
    words, unknown = _read_dictionary(spark, dictionary, unknown_token, names)
    if broadcast_dictionary:
        words = F.broadcast(words)
    numbered = examples.select(F.monotonically_increasing_id().alias(_ROW), "_label", "_tokens")
    exploded = numbered.select(
        _ROW, "_label", F.posexplode(F.col("_tokens")).alias("_pos", "_token")
    )
    joined = exploded.join(words, exploded["_token"] == words["_word"], "left")
    vector = F.coalesce(F.col("_vector"), F.lit(unknown).cast("array<float>"))
    grouped = joined.groupBy(_ROW, "_label").agg(
        F.array_sort(F.collect_list(F.struct(F.col("_pos"), vector.alias("v")))).alias("_steps")
    )
    columns = [F.transform(F.col("_steps"), lambda s: s["v"]).alias(features_col)]
    if label_col is not None:
        columns.append(F.col("_label").alias(label_col))
    if length_col is not None:
        columns.append(F.size(F.col("_steps")).alias(length_col))
    return grouped.select(*columns)
