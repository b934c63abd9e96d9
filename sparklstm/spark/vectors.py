"""Spark ML ``Vector`` columns in and out, on a classic session and on Spark Connect.

Spark ML users often hold a fixed-length univariate window as a ``Vector`` (the output of
``VectorAssembler``), and Spark ML's evaluators read class probabilities only from ``Vector``
columns. sparklstm's own columns are arrays; the conversions here are Spark's own
``vector_to_array`` / ``array_to_vector`` (run in the JVM, no Python per row), taken from the
implementation of the DataFrame's kind of session: the generic functions choose by the process's
API mode, which is wrong when a classic and a Connect session live in one process.
"""

from __future__ import annotations

from typing import Any

from sparklstm.spark.schema import quoted_name
from sparklstm.spark.session import is_connect

__all__ = ["array_to_vector", "is_vector", "vector_to_array", "vectors_as_arrays"]


def is_vector(schema: Any, column: str) -> bool:
    """Whether ``column`` of ``schema`` is a Spark ML ``Vector`` (dense or sparse)."""
    from pyspark.ml.linalg import VectorUDT

    return column in schema.fieldNames() and isinstance(schema[column].dataType, VectorUDT)


def vector_to_array(column: Any, session: Any) -> Any:
    """``array<double>`` of a ``Vector`` column (a sparse vector's zeros written out)."""
    if is_connect(session):
        from pyspark.ml.connect.functions import vector_to_array as convert

        return convert(column, "float64")
    from pyspark.ml.functions import vector_to_array as convert

    return convert.__wrapped__(column, "float64")


def array_to_vector(column: Any, session: Any) -> Any:
    """A dense ``Vector`` column of an ``array<double>`` column."""
    if is_connect(session):
        from pyspark.ml.connect.functions import array_to_vector as convert

        return convert(column)
    from pyspark.ml.functions import array_to_vector as convert

    return convert.__wrapped__(column)


def vectors_as_arrays(df: Any, column: str) -> Any:
    """``df`` with ``column`` as ``array<double>`` if it is a ``Vector`` (a univariate
    sequence whose length is the vector's size), else ``df`` unchanged."""
    if not is_vector(df.schema, column):
        return df
    from pyspark.sql import functions as F

    return df.withColumn(column, vector_to_array(F.col(quoted_name(column)), df.sparkSession))
