"""Load training data into the trainer's input schema on Spark (see :mod:`.read`)."""

from sparklstm.spark.sources.read import (
    FORMATS,
    LABEL_TYPES,
    SEQUENCE_TYPES,
    ParquetDatasetWriter,
    read_sequences,
    tune_parquet_reader,
    write_parquet_dataset,
)
from sparklstm.spark.sources.read import (
    READER_BATCH_SIZE as READER_BATCH_SIZE,  # not in __all__, imported by tests
)

__all__ = [
    "FORMATS",
    "SEQUENCE_TYPES",
    "LABEL_TYPES",
    "read_sequences",
    "tune_parquet_reader",
    "ParquetDatasetWriter",
    "write_parquet_dataset",
]
