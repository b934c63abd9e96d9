"""Load training data into the trainer's input schema on Spark: :func:`read_sequences`.

It checks its arguments, sniffs a local path's format, then reads Parquet as is (tuning the
reader, :mod:`.parquet`), parses CSV/JSON lines (:mod:`.delimited`) or the reference project's
token text with its dictionary (:mod:`.reference_text`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sparklstm.io.parquet import PathLike, check_column_name, check_path
from sparklstm.spark.sources.delimited import _read_delimited
from sparklstm.spark.sources.files import _check_format, _load, _Names, _require_columns
from sparklstm.spark.sources.parquet import _PARQUET_OPTIONS, tune_parquet_reader
from sparklstm.spark.sources.reference_text import _read_reference_text
from sparklstm.validation import check_non_empty_str

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "json", "text")
SEQUENCE_TYPES = ("multivariate", "univariate", "tokens")
LABEL_TYPES = ("int", "float", "int_array", "float_array")


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} = {value!r}: must be one of {', '.join(map(repr, choices))}")
    return value


def read_sequences(
    spark: SparkSession,
    path: PathLike,
    format: str = "parquet",
    *,
    features_col: str = "features",
    label_col: str | None = "label",
    length_col: str | None = None,
    sequence_type: str = "multivariate",
    label_type: str | None = None,
    step_sep: str = ";",
    value_sep: str = ",",
    csv_sep: str = ",",
    header: bool = True,
    dictionary: PathLike | None = None,
    unknown_token: str = "UNKNOWN",
    broadcast_dictionary: bool = True,
    validate: bool = True,
    num_partitions: int | None = None,
    flag: str | None = None,
) -> DataFrame:
    """Load sequences into a DataFrame in the trainer's input schema.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    path : str or os.PathLike
        File or directory (any path Spark reads: local, HDFS, S3, ...).
    format : {"parquet", "csv", "json", "text"}, default "parquet"
        - ``"parquet"``: read as is; only the named columns' presence is checked (the trainer
          checks types and values). The session's Parquet reader batch is made to follow the
          width of the rows (:func:`tune_parquet_reader`), so that long sequences do not fill
          the executors' heap, and column chunks are read in pieces of 256 KiB rather than one
          buffer each (``parquet.hadoop.vectored.io.enabled=false``).
        - ``"csv"`` (all columns read as strings) and ``"json"`` (JSON lines): the sequence
          column is text such as ``"1.0,2.0;3.0,4.0"`` (steps split by ``step_sep``, features
          by ``value_sep``) or ``"1,2,3"``, parsed as ``sequence_type`` says; in JSON it may
          also be an array already, which is cast. The label and length columns are parsed or
          cast likewise. Other columns are kept unchanged.
        - ``"text"``: the reference project's labelled token file, one ``label<TAB>tok1,tok2,...``
          line per example. Each token is looked up in ``dictionary`` (lines
          ``word<TAB>v1,v2,...``); tokens not in it get the ``unknown_token`` row's vector (a
          zero vector if the dictionary has none). The result has the sequence column
          (``array<array<float>>``) and an ``int`` label column, and row order is not kept.
    features_col, label_col, length_col : str
        Column names; ``label_col=None`` reads data without labels (inference), and
        ``length_col`` (optional) names an integer column of valid lengths. For ``"text"``
        they name the output columns (the length column then holds the token counts).
    sequence_type : {"multivariate", "univariate", "tokens"}, default "multivariate"
        How csv/json sequence text is parsed: ``array<array<float>>``, ``array<float>`` or
        ``array<int>`` token ids.
    label_type : {"int", "float", "int_array", "float_array"}, optional
        How the csv/json label column is parsed: a class index, a real target, or a
        ``value_sep``-separated list (per-step labels or a vector target). By default text and
        integers become ``int``, floating numbers ``float`` and arrays keep their element kind.
    step_sep, value_sep : str, default ";" and ","
        Separators in sequence (and array label) text; taken literally, not as regexes.
        ``step_sep`` is used only for multivariate sequences, and must then differ from
        ``value_sep``.
    csv_sep : str, default ","
        CSV field separator (quote fields holding commas, as CSV does).
    header : bool, default True
        Whether CSV files start with a header line (otherwise columns are ``_c0``, ``_c1``...).
    dictionary : str or os.PathLike, optional
        The word-vector file, required for ``format="text"`` and used only there.
    unknown_token : str, default "UNKNOWN"
        Dictionary word whose vector unseen tokens get.
    broadcast_dictionary : bool, default True
        Broadcast the dictionary to the token join (right for dictionaries up to a few hundred
        thousand words); ``False`` lets Spark choose a shuffle join for larger ones.
    validate : bool, default True
        Run the one aggregation job that finds unparseable values (csv/json/text) and raise
        before training; ``False`` leaves bad values as nulls for the trainer's checks.
    num_partitions : int, optional
        Repartition the result into this many partitions.
    flag : str, optional
        The command-line flag ``path`` came from (a job passes ``"--data"``): error messages
        then name the path and options as flags (``--data X``, ``--format csv``) rather than
        as this function's arguments (``path X``, ``format='csv'``).

    Returns
    -------
    pyspark.sql.DataFrame

    Raises
    ------
    ValueError
        Unknown ``format``/``sequence_type``/``label_type``, data in another format than
        ``format`` (a local path's first data file is looked at before Spark reads it: Parquet
        files start and end with ``PAR1``; the message names the file and the format to pass),
        data Spark cannot read (one line with the first line of Spark's message), a missing
        column (the message lists the columns present), unparseable values (naming the column,
        the number of bad rows and the first bad row), a malformed dictionary, or no rows.
    TypeError
        A column of a type that cannot hold what was asked for.
    FileNotFoundError
        ``path`` or ``dictionary`` does not exist.

    Examples
    --------
    >>> df = read_sequences(spark, "data/train.csv", "csv", label_type="float")  # doctest: +SKIP
    >>> df.schema.simpleString()  # doctest: +SKIP
    'struct<features:array<array<float>>,label:float>'
    """
    if flag is not None and (not isinstance(flag, str) or not flag):
        raise TypeError(f"flag must be a non-empty str or None, got {flag!r}")
    names = _Names(flag)
    if flag is not None and (not isinstance(format, str) or format not in FORMATS):
        raise ValueError(
            f"--format {format!r} (reading {flag} {path}): must be one of " + ", ".join(FORMATS)
        )
    format = _choice("format", format, FORMATS)
    sequence_type = _choice("sequence_type", sequence_type, SEQUENCE_TYPES)
    if label_type is not None:
        label_type = _choice("label_type", label_type, LABEL_TYPES)
    features_col = check_column_name("features_col", features_col)
    label_col = check_column_name("label_col", label_col, optional=True)
    length_col = check_column_name("length_col", length_col, optional=True)
    named = [c for c in (features_col, label_col, length_col) if c is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"features_col, label_col and length_col must differ, got {named}")
    step_sep = check_non_empty_str("step_sep", step_sep, error=ValueError)
    value_sep = check_non_empty_str("value_sep", value_sep, error=ValueError)
    csv_sep = check_non_empty_str("csv_sep", csv_sep, error=ValueError)
    if step_sep == value_sep and format in ("csv", "json") and sequence_type == "multivariate":
        raise ValueError(
            f"step_sep and value_sep must differ to parse multivariate sequences, both are "
            f"{step_sep!r}"
        )
    if num_partitions is not None and (
        isinstance(num_partitions, bool)
        or not isinstance(num_partitions, (int, np.integer))
        or num_partitions < 1
    ):
        raise ValueError(f"num_partitions = {num_partitions!r}: must be an integer >= 1")
    path = check_path(names.path(), path)
    _check_format(path, format, names)
    if format == "text":
        if dictionary is None:
            raise ValueError("format='text' needs dictionary= (the word<TAB>v1,v2,... file)")
        if sequence_type != "multivariate":
            raise ValueError(
                "format='text' produces word vectors (sequence_type='multivariate'), got "
                f"sequence_type={sequence_type!r}"
            )
        if not isinstance(unknown_token, str) or not unknown_token:
            raise TypeError("unknown_token must be a non-empty str")
        dictionary = check_path(names.path("dictionary"), dictionary)
        _check_format(dictionary, "text", names, "dictionary")
        df = _read_reference_text(
            spark,
            path,
            dictionary,
            features_col,
            label_col,
            length_col,
            unknown_token,
            bool(broadcast_dictionary),
            bool(validate),
            names,
        )
    elif dictionary is not None:
        raise ValueError(f"dictionary is only used with format='text', not format={format!r}")
    elif format == "parquet":
        reader = spark.read.options(**_PARQUET_OPTIONS)
        df = _load(path, format, reader.parquet, names)  # reads a footer: the schema
        _require_columns(
            df,
            f"{path} (format 'parquet')",
            features=features_col,
            label=label_col,
            length=length_col,
        )
        try:
            tune_parquet_reader(spark, path, named)
        except Exception as exc:  # a setting that could not be tuned never fails the read
            logger.warning("%s: the Parquet reader's batch size was left alone (%s)", path, exc)
    else:
        df = _read_delimited(
            spark,
            path,
            format,
            features_col,
            label_col,
            length_col,
            sequence_type,
            label_type,
            step_sep,
            value_sep,
            csv_sep,
            bool(header),
            bool(validate),
            names,
        )
    if num_partitions is not None:
        df = df.repartition(int(num_partitions))
    return df
