"""File formats that need no Spark: NumPy and pyarrow only, no pyspark imported.

- :mod:`sparklstm.io.parquet`: NumPy sequences written as a directory of Parquet files in the
  trainer's input schema (:class:`~sparklstm.io.parquet.ParquetDatasetWriter`,
  :func:`~sparklstm.io.parquet.write_parquet_dataset`).

The submodules are imported when used, so ``import sparklstm.io`` costs nothing.
"""
