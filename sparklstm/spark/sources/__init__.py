"""Load training data into the trainer's input schema on Spark.

Reading (:func:`read_sequences`) runs on Spark and turns each supported format into a
DataFrame with

- a sequence column: ``array<array<float>>`` (``[time][feature]``), ``array<float>``
  (univariate) or ``array<int>`` (token ids);
- a label column: ``int`` (class), ``float`` (target), ``array<float>`` (vector target) or an
  ``array`` of per-step labels;
- optionally an ``int`` length column.

Text is parsed with Spark SQL functions only (``split``, ``transform``, ``try_cast``): no
Python UDF and no per-row Python. A value that does not parse is found by one aggregation
job before anything trains, and reported as a ``ValueError`` naming the column, the number of
bad rows and the first bad row's text.

Writing (:func:`write_parquet_dataset`, :class:`ParquetDatasetWriter`) needs no Spark and lives
in :mod:`sparklstm.io.parquet`; both names are re-exported here.

The modules, one concern each:

- :mod:`.read`: :func:`read_sequences` (argument checks, then one reader per format) and the
  names of the formats, sequence and label types;
- :mod:`.files`: local paths, format sniffing and one-line read errors;
- :mod:`.parquet`: the Parquet reader's tuning (:func:`tune_parquet_reader`);
- :mod:`.delimited`: CSV and JSON lines, text columns parsed with Spark SQL and checked in one job;
- :mod:`.reference_text`: the reference project's ``label<TAB>tok1,...`` text and its
  word-vector dictionary.

This package imports pyspark lazily, inside :func:`read_sequences`.
"""

from sparklstm.io.parquet import ParquetDatasetWriter, write_parquet_dataset
from sparklstm.spark.sources.parquet import (
    READER_BATCH_SIZE as READER_BATCH_SIZE,  # not in __all__, imported by tests
)
from sparklstm.spark.sources.parquet import tune_parquet_reader
from sparklstm.spark.sources.read import FORMATS, LABEL_TYPES, SEQUENCE_TYPES, read_sequences

__all__ = [
    "FORMATS",
    "SEQUENCE_TYPES",
    "LABEL_TYPES",
    "read_sequences",
    "tune_parquet_reader",
    "ParquetDatasetWriter",
    "write_parquet_dataset",
]
