"""Persistence of the LSTM estimators and models, as Spark ML keeps its own.

Persistence follows Spark ML: a model directory holds ``metadata/`` (Spark's Params JSON, as
``DefaultParamsWriter.saveMetadata`` writes it, plus the round history) and ``model/`` (the
core model in its own ``save`` format, so ``SequenceModel.load(path + "/model")`` -- or
``Seq2SeqModel.load`` for an ``LSTMSeq2SeqModel`` -- works without Spark). An Estimator's
directory holds ``metadata/`` only. Models reload inside a saved ``PipelineModel``; the layout
is the same on both kinds of session, so a model saved on one kind loads on the other.

Where the files go:

* **Classic session**: paths resolve as Spark resolves them. Local paths (plain or ``file://``)
  are written and read directly; other Hadoop URIs (``hdfs://``, ``s3a://``) go through a local
  temporary directory and the Hadoop ``FileSystem`` API.
* **Spark Connect** (no JVM in this process): the server writes and reads ``metadata/`` and
  reads ``model/`` (``binaryFile``), so loading takes any path or URI the server can read, and
  an Estimator saves wherever the server can write. The weights' files must keep their names,
  which no DataFrame writer can do, so this client writes ``model/`` itself: a fitted model
  (alone or in a ``PipelineModel``) saves only to a directory that the client and the server
  see at the same path -- one machine, or a shared file system mounted alike -- given as an
  absolute plain path or ``file://`` URI. Another URI is refused in one line before anything is
  written; after the server has written ``metadata/`` the writer checks that the client sees
  it at the same path, and otherwise fails in one line before it writes any weights. To get a
  model into HDFS or S3 from a Connect client, save it to a local directory and copy it there
  (or save it with a classic session). ``overwrite()`` deletes the path first, by the server
  (the call pyspark's own Connect writers make).

Loading checks what it reads and never unpickles: another class's directory, an unsupported
``metadataVersion``, a malformed history, missing weights, or Params that disagree with the
weights (``cellType``, ``hiddenSizes``, ...) raise :class:`ModelFileError`,
one line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.errors import PySparkException
from pyspark.ml.param import Param, Params
from pyspark.ml.util import DefaultParamsWriter, MLReader, MLWriter

from sparklstm.io.model_files import ARRAYS_NAME, MANIFEST_NAME, ModelFileError
from sparklstm.model import SequenceModel
from sparklstm.model.factory import AnyConfig, AnyModel
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.spark.session import is_connect
from sparklstm.training.history import History

if TYPE_CHECKING:
    from sparklstm.spark.ml.estimators import _NetworkEstimator
    from sparklstm.spark.ml.models import _NetworkModel

__all__ = [
    "METADATA_VERSION",
    "SEQ2SEQ_STRUCTURE",
    "SEQUENCE_STRUCTURE",
    "load_sequence_model",
    "save_sequence_model",
]

logger = logging.getLogger(__name__)

MODEL_DIR = "model"
METADATA_DIR = "metadata"
METADATA_VERSION = 1
# The ``metadataVersion``s the readers understand; the writer writes METADATA_VERSION.
SUPPORTED_METADATA_VERSIONS = (1,)


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays turned into JSON-ready Python values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# The Params that define the network, each with the value the weights imply (read from the
# loaded core model's config). The saved Params must agree with the weights; None for a Param
# the data decides (vocabSize, embeddingDim, sourceVocabSize, ...) agrees with any value.
# Each fitted model class names its own (``_structure``).
SEQUENCE_STRUCTURE: dict[str, Callable[[Any], Any]] = {
    "cellType": lambda config: config.cell,
    "hiddenSizes": lambda config: list(config.hidden_sizes),
    "bidirectional": lambda config: config.bidirectional,
    "dropout": lambda config: config.dropout,
    "head": lambda config: config.head,
    "vocabSize": lambda config: config.vocab_size,
    "embeddingDim": lambda config: config.embedding_dim,
}
SEQ2SEQ_STRUCTURE: dict[str, Callable[[Any], Any]] = {
    "cellType": lambda config: config.cell,
    "hiddenSizes": lambda config: list(config.hidden_sizes),
    "bidirectional": lambda config: config.bidirectional,
    "attention": lambda config: config.attention,
    "embeddingDim": lambda config: config.embedding_dim,
    "sourceVocabSize": lambda config: config.source_vocab_size,
    "targetVocabSize": lambda config: config.target_vocab_size,
    "startToken": lambda config: config.start_token,
    "endToken": lambda config: config.end_token,
    "samplingRate": lambda config: config.sampling_rate,
}
_DATA_DECIDES = frozenset({"vocabSize", "embeddingDim", "sourceVocabSize", "targetVocabSize"})


def _implied_structure(structure: Mapping[str, Callable[[Any], Any]], config: Any) -> dict:
    return {name: implied(config) for name, implied in structure.items()}


def _agrees(name: str, stated: Any, implied: Any) -> bool:
    return stated == implied or (stated is None and name in _DATA_DECIDES)


def model_kind(config: AnyConfig) -> str:
    """What a fitted model class holds, as its ``_task`` says it: ``seq2seq`` for an
    encoder-decoder, else the sequence model's task."""
    return "seq2seq" if isinstance(config, Seq2SeqConfig) else config.task


def _class_name(cls: type) -> str:
    """The name saved in (and checked against) the metadata: the public module's, which is
    also the module these classes report as theirs (so Spark ML's readers, which import the
    saved name, find them)."""
    return f"{cls.__module__}.{cls.__name__}"


def _json_kind(value: Any) -> str:
    """What a JSON value is, for messages: ``a string``, ``an array``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _one_line(error: BaseException) -> str:
    """The first non-empty line of ``error``'s message (Spark appends JVM stack traces)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ------------------------------------------------------------------------------ persistence
# Where the files go. A classic session resolves a path as Spark does (Hadoop, in the JVM of
# this process): a local path is written and read directly, any other URI through a local
# temporary directory and the Hadoop FileSystem API. A Spark Connect client has no JVM: its
# server writes and reads the metadata (a DataFrame, as Spark ML's own writers do) and reads
# the weights (the binaryFile source), but the weights' two files must keep their names, which
# no DataFrame writer can do, so this client writes them itself.
_EXISTS = "path {path!r} already exists; use .write().overwrite().save(path) to replace it"
_WEIGHT_FILES = (MANIFEST_NAME, ARRAYS_NAME)


def _hadoop_path(spark: Any, path: str) -> tuple[Any, Any, str | None]:
    """Classic sessions only: ``(FileSystem, qualified Path, local path or None)`` of ``path``,
    resolved as Spark resolves it (relative paths and paths without a scheme against the
    default file system). The local path is set when the file system is the local one."""
    sc = spark.sparkContext
    hadoop_path = sc._jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(sc._jsc.hadoopConfiguration())
    qualified = fs.makeQualified(hadoop_path)
    uri = qualified.toUri()
    local = uri.getPath() if (uri.getScheme() or "file") == "file" else None
    return fs, qualified, local


def _client_path(path: str) -> str:
    """Spark Connect: the absolute path on this client's file system that ``path`` names (a
    plain path, a relative one against this process's working directory, or a ``file:`` URI).
    Any other URI is refused in one line: only the server could write there."""
    parts = urllib.parse.urlsplit(path)
    scheme = parts.scheme.lower()
    if not scheme:
        return os.path.abspath(path)
    if scheme == "file" and parts.netloc in ("", "localhost"):
        return os.path.abspath(parts.path)
    raise ValueError(
        f"path {path!r}: on Spark Connect this client writes a fitted model's weights itself, "
        f"to its own file system, not to {scheme}:// URIs; save to a local or shared directory "
        "that the client and the server see at the same path (or with a classic session), "
        "then copy it there"
    )


def save_sequence_model(spark: Any, model: AnyModel, path: str) -> None:
    """``model.save`` at ``path``. On a classic session: a local path or ``file:`` URI directly,
    any other Hadoop URI through a local temporary directory and
    ``FileSystem.copyFromLocalFile``. On Spark Connect: on this client's file system (a plain
    path or ``file:`` URI; other URIs raise ``ValueError``)."""
    if is_connect(spark):
        model.save(_client_path(path))
        return
    fs, target, local = _hadoop_path(spark, path)
    if local is not None:
        model.save(local)
        return
    jvm = spark.sparkContext._jvm
    scratch = tempfile.mkdtemp(prefix="sparklstm-save-")
    try:
        staged = model.save(os.path.join(scratch, MODEL_DIR))
        source = jvm.org.apache.hadoop.fs.Path(staged.resolve().as_uri())
        fs.copyFromLocalFile(False, True, source, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_sequence_model(spark: Any, path: str, model_class: type = SequenceModel) -> AnyModel:
    """Inverse of :func:`save_sequence_model`: a ``model_class`` (``SequenceModel`` or
    ``Seq2SeqModel``); :class:`ModelFileError` if ``path`` is missing or does not hold a valid
    model of that class. On Spark Connect the server reads the files: any path or URI the
    server can read (a copy of the files comes to this client)."""
    if is_connect(spark):
        return _load_through_server(spark, path, model_class)
    fs, source, local = _hadoop_path(spark, path)
    if local is not None:
        return model_class.load(local)
    if not fs.exists(source):
        raise ModelFileError(f"{path}: no such file or directory")
    jvm = spark.sparkContext._jvm
    scratch = tempfile.mkdtemp(prefix="sparklstm-load-")
    try:
        staged = os.path.join(scratch, MODEL_DIR)
        fs.copyToLocalFile(False, source, jvm.org.apache.hadoop.fs.Path("file://" + staged), True)
        return _load_staged(staged, path, model_class)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _load_staged(staged: str, path: str, model_class: type) -> AnyModel:
    """``model_class.load`` of a local copy of ``path``; a failure names ``path``."""
    try:
        return model_class.load(staged)
    except ModelFileError as exc:
        raise ModelFileError(str(exc).replace(staged, path)) from exc


def _load_through_server(spark: Any, path: str, model_class: type) -> AnyModel:
    """Spark Connect: the weights directory ``path`` read by the server (``binaryFile``, its
    two files only), copied to a local temporary directory and loaded from there."""
    try:
        rows = (
            spark.read.format("binaryFile")
            .option("pathGlobFilter", "{" + ",".join(_WEIGHT_FILES) + "}")
            .load(path)
            .select("path", "content")
            .collect()
        )
    except PySparkException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            raise ModelFileError(f"{path}: no such file or directory") from exc
        raise ModelFileError(
            f"{path}: the Spark Connect server cannot read the model files ({_one_line(exc)})"
        ) from exc
    found: dict[str, bytes] = {}
    for row in rows:
        name = row["path"].rstrip("/").rsplit("/", 1)[-1]
        if name in found:  # one in path, another in a subdirectory
            raise ModelFileError(f"{path}: holds more than one {name}; a model directory has one")
        found[name] = bytes(row["content"])
    scratch = tempfile.mkdtemp(prefix="sparklstm-load-")
    try:
        staged = os.path.join(scratch, MODEL_DIR)
        os.mkdir(staged)
        for name, content in found.items():
            with open(os.path.join(staged, name), "wb") as file:
                file.write(content)
        return _load_staged(staged, path, model_class)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_metadata(
    spark: Any,
    instance: Params,
    path: str,
    extra: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> str:
    """Write what ``DefaultParamsWriter.saveMetadata`` writes (one JSON line, in
    ``<path>/metadata``) through ``spark`` -- on Spark Connect the server writes it -- and
    return the line."""
    text = DefaultParamsWriter._get_metadata_to_save(instance, spark, extra, params)
    where = os.path.join(path, METADATA_DIR)
    try:
        spark.createDataFrame([(text,)], schema=["value"]).coalesce(1).write.text(where)
    except PySparkException as exc:
        if exc.getCondition() == "PATH_ALREADY_EXISTS":
            raise FileExistsError(_EXISTS.format(path=path) + f" ({where} exists)") from exc
        raise OSError(f"path {path!r}: cannot write {where} ({_one_line(exc)})") from exc
    return text


def _check_client_sees(path: str, text: str) -> None:
    """Spark Connect: this client must find, at its own ``path``, the metadata line the server
    has just written there; otherwise the weights it writes next would land elsewhere."""
    folder = os.path.join(_client_path(path), METADATA_DIR)
    lines = []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            if name.startswith("part-"):
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as file:
                    lines.append(file.read().rstrip("\n"))
    if text not in lines:
        raise ValueError(
            f"path {path!r}: the Spark Connect server wrote the metadata there, but this client "
            f"does not see it at {folder}; the client writes the weights itself, so save to a "
            "directory that the client and the server see at the same path (one machine, or a "
            "shared file system mounted alike), given as an absolute path (the server resolves a "
            "relative one against its own working directory)"
        )


def _exists_on_server(spark: Any, path: str) -> bool:
    """Spark Connect: whether the server finds ``path`` (a file or directory). Resolving a
    file source checks that its path exists (and lists it: a model directory is small)."""
    try:
        spark.read.format("binaryFile").load(path).schema  # noqa: B018 (the server resolves it)
    except PySparkException as exc:
        return exc.getCondition() != "PATH_NOT_FOUND"
    return True


def _delete_on_server(path: str) -> None:
    """Spark Connect: the server deletes ``path`` if it exists, as Spark ML writers do before
    an overwrite. It is the call pyspark's own Connect writers make (``Pipeline``,
    ``CrossValidator``); it goes to the active Connect session."""
    from pyspark.ml.connect.readwrite import RemoteMLWriter

    try:
        RemoteMLWriter.handleOverwrite(path, True)
    except PySparkException as exc:
        raise OSError(
            f"path {path!r}: the Spark Connect server cannot delete it to overwrite it "
            f"({_one_line(exc)})"
        ) from exc


class _Writer(MLWriter):
    """An :class:`MLWriter` for both kinds of session. ``save`` refuses a path that exists
    unless ``overwrite()`` was called; then the path is deleted first, as Spark ML does: by
    the JVM on a classic session (``MLWriter.save``), by the server on Spark Connect (where
    ``MLWriter.save`` would need a JVM in this process)."""

    def save(self, path: str) -> None:
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty string, got {path!r}")
        spark = self.sparkSession
        if not is_connect(spark):
            if not self.shouldOverwrite:
                fs, qualified, _ = _hadoop_path(spark, path)
                if fs.exists(qualified):
                    raise FileExistsError(_EXISTS.format(path=path))
            super().save(path)
            return
        self._check_connect_path(spark, path)
        if self.shouldOverwrite:
            _delete_on_server(path)
        self.saveImpl(path)

    def _check_connect_path(self, spark: Any, path: str) -> None:
        """Spark Connect: refuse ``path`` before anything is written or deleted."""
        if not self.shouldOverwrite and _exists_on_server(spark, path):
            raise FileExistsError(_EXISTS.format(path=path))


class _LSTMEstimatorWriter(_Writer):
    """Writes an Estimator's Params: ``<path>/metadata`` only (no weights), so on Spark
    Connect any path or URI the server can write."""

    def __init__(self, instance: _NetworkEstimator) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        _write_metadata(self.sparkSession, self.instance, path)
        logger.info("saved %s to %s", self.instance.uid, path)


class _LSTMModelWriter(_Writer):
    """Writes ``<path>/metadata`` (Spark's Params JSON and the round history) and
    ``<path>/model`` (the core model files). On Spark Connect the server writes the metadata
    and this client the weights: ``path`` must be a directory both see at the same path; the
    writer checks that the client sees the metadata the server wrote before it writes the
    weights."""

    def __init__(self, instance: _NetworkModel) -> None:
        super().__init__()
        self.instance = instance

    def _check_connect_path(self, spark: Any, path: str) -> None:
        # The client writes here too: its own file system decides (the server's copy of the
        # directory is the same one, which saveImpl checks).
        if not self.shouldOverwrite and os.path.lexists(_client_path(path)):
            raise FileExistsError(_EXISTS.format(path=path))

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        model = self.instance._core_model
        history = self.instance._history
        extra = {
            "sparklstm": {
                "metadataVersion": METADATA_VERSION,
                "task": model_kind(model.config),
                "history": None if history is None else _plain(history.to_dict()),
            }
        }
        # The Params set, plus those that disagree with the weights (a Model wrapped around a
        # SequenceModel keeps the default Params): the reader refuses Params that disagree.
        params = {param.name: value for param, value in self.instance._paramMap.items()}
        for name, implied in _implied_structure(self.instance._structure, model.config).items():
            if not _agrees(name, self.instance.getOrDefault(name), implied):
                params[name] = implied
        text = _write_metadata(spark, self.instance, path, extra, params)
        if is_connect(spark):
            _check_client_sees(path, text)
        save_sequence_model(spark, model, os.path.join(path, MODEL_DIR))
        logger.info("saved %s to %s", self.instance.uid, path)


# ------------------------------------------------------------------------------ reading
# Every problem with a saved directory is a one-line ModelFileError that starts with the path
# of the file at fault. Nothing is unpickled or imported: the metadata is JSON, the weights
# are read by SequenceModel.load (npz without pickle, checked against their digests).
def _read_metadata(spark: Any, path: str, cls: type[Params]) -> dict[str, Any]:
    """The JSON ``<path>/metadata`` that DefaultParamsWriter wrote, checked to name ``cls``."""
    where = os.path.join(path, METADATA_DIR)
    try:
        row = spark.read.text(where).first()
    except PySparkException as exc:
        raise ModelFileError(f"{where}: cannot read the metadata ({_one_line(exc)})") from exc
    if row is None:
        raise ModelFileError(f"{where}: the metadata is empty")
    try:
        metadata = json.loads(row[0])
    except ValueError as exc:
        raise ModelFileError(f"{where}: the metadata is not valid JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: the metadata is {_json_kind(metadata)}, not an object")
    for key in ("class", "uid"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise ModelFileError(f"{where}: the metadata's {key!r} is not a non-empty string")
    expected = _class_name(cls)
    if metadata["class"] != expected:
        raise ModelFileError(
            f"{where}: holds a {metadata['class']}, not a {expected}; load it with its own "
            "class (or PipelineModel.load)"
        )
    return metadata


def _set_saved_params(
    instance: Params, metadata: Mapping[str, Any], where: str, skip: Collection[str] = ()
) -> None:
    """Set the ``paramMap`` and ``defaultParamMap`` of ``metadata`` on ``instance`` (as
    ``DefaultParamsReader.getAndSetParams`` does), refusing unknown and invalid Params."""
    for key in ("paramMap", "defaultParamMap"):
        values = metadata.get(key, {})
        if not isinstance(values, dict):
            raise ModelFileError(f"{where}: the {key} is {_json_kind(values)}, not an object")
        for name, value in values.items():
            if name in skip:
                continue
            # Looked up on the class: no property of the instance runs.
            if not isinstance(getattr(type(instance), name, None), Param):
                raise ModelFileError(
                    f"{where}: the {key} holds {name!r}, which is not a Param of "
                    f"{type(instance).__name__}"
                )
            param = instance.getParam(name)
            if key == "defaultParamMap" and value is None:  # as Params._setDefault does
                instance._setDefault(**{name: None})
                continue
            try:
                converted = param.typeConverter(value)
            except (TypeError, ValueError) as exc:
                raise ModelFileError(
                    f"{where}: Param {name} is {value!r} in the {key}, which is invalid: "
                    f"{_one_line(exc)}"
                ) from exc
            if key == "paramMap":
                instance.set(param, converted)
            else:
                instance._setDefault(**{name: converted})


def _check_metadata_version(version: Any, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{where}: metadataVersion {version!r} is not an integer")
    if version not in SUPPORTED_METADATA_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_METADATA_VERSIONS)
        detail = (
            "the model is newer than this library; upgrade sparklstm to read it"
            if version > max(SUPPORTED_METADATA_VERSIONS)
            else "this library cannot read that version"
        )
        raise ModelFileError(
            f"{where}: metadataVersion {version} is not supported (supported: {supported}); "
            f"{detail}"
        )


def _saved_history(saved: Any, where: str) -> History | None:
    """The :class:`History` the writer stored (``History.to_dict``), checked."""
    if saved is None:
        return None
    if not isinstance(saved, dict):
        raise ModelFileError(
            f"{where}: the training history is {_json_kind(saved)}, not an object "
            "(rows, best_round, stopped_early, summary)"
        )
    rows = saved.get("rows", [])
    if not isinstance(rows, list):
        raise ModelFileError(
            f"{where}: the history's rows is {_json_kind(rows)}, not an array of objects "
            "(one per round)"
        )
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ModelFileError(
                f"{where}: the history's row {index} is {_json_kind(row)}, not an object"
            )
    best_round = saved.get("best_round")
    if best_round is not None and (not isinstance(best_round, int) or isinstance(best_round, bool)):
        raise ModelFileError(
            f"{where}: the history's best_round is {_json_kind(best_round)}, not an integer or null"
        )
    stopped_early = saved.get("stopped_early", False)
    if not isinstance(stopped_early, bool):
        raise ModelFileError(
            f"{where}: the history's stopped_early is {_json_kind(stopped_early)}, not a boolean"
        )
    summary = saved.get("summary", {})
    if not isinstance(summary, dict):
        raise ModelFileError(
            f"{where}: the history's summary is {_json_kind(summary)}, not an object"
        )
    return History(
        rows=list(rows), best_round=best_round, stopped_early=stopped_early, summary=dict(summary)
    )


class _LSTMModelReader(MLReader):
    """Reads what :class:`_LSTMModelWriter` wrote, into ``cls``, and checks it: the class,
    the metadata version, the history, and that the Params agree with the weights."""

    def __init__(self, cls: type[_NetworkModel]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> _NetworkModel:
        spark = self.sparkSession
        metadata = _read_metadata(spark, path, self.cls)
        where = os.path.join(path, METADATA_DIR)
        extra = metadata.get("sparklstm")
        if not isinstance(extra, dict):
            raise ModelFileError(
                f"{where}: no 'sparklstm' section; not a model saved by sparklstm.spark.ml"
            )
        _check_metadata_version(extra.get("metadataVersion"), where)
        task = self.cls._task
        if extra.get("task") != task:
            raise ModelFileError(
                f"{where}: describes a {extra.get('task')!r} model, but names "
                f"{_class_name(self.cls)}, which holds {task} models"
            )
        history = _saved_history(extra.get("history"), where)
        weights = os.path.join(path, MODEL_DIR)
        model = load_sequence_model(spark, weights, self.cls._core_class)
        config = model.config
        if model_kind(config) != task:
            raise ModelFileError(
                f"{weights}: holds a {model_kind(config)} model, but the metadata ({where}) says "
                f"{task}"
            )
        instance = self.cls(model, history)
        instance._resetUid(metadata["uid"])
        _set_and_check_params(instance, metadata, config, where, weights)
        return instance


def _set_and_check_params(
    instance: _NetworkModel,
    metadata: Mapping[str, Any],
    config: AnyConfig,
    where: str,
    weights: str,
) -> None:
    """Set the saved Params on ``instance``; every Param that defines the network must agree
    with the weights' ``config``."""
    structure = instance._structure
    builtin = {name: instance.getOrDefault(name) for name in structure}
    # numClasses is the Estimator's Param (the Model has a property of that name); if the
    # metadata holds it anyway, it must be the number of outputs.
    is_classifier = instance._task == "classification"
    for key in ("paramMap", "defaultParamMap") if is_classifier else ():
        values = metadata.get(key)
        stated = values.get("numClasses") if isinstance(values, dict) else None
        if stated is not None and stated != config.output_size:
            raise _disagreement(where, weights, "numClasses", stated, config.output_size)
    _set_saved_params(instance, metadata, where, skip=("numClasses",) if is_classifier else ())
    explicit = set(metadata.get("paramMap", {}))
    for name, implied in _implied_structure(structure, config).items():
        stated = instance.getOrDefault(name)
        if _agrees(name, stated, implied):
            continue
        if name not in explicit and stated == builtin[name]:
            # An untouched default: a Model wrapped around a SequenceModel, saved before the
            # writer stored the Params its weights imply. The weights decide.
            logger.info("%s: Param %s taken from the weights: %r", where, name, implied)
            instance._set(**{name: implied})
            continue
        raise _disagreement(where, weights, name, stated, implied)


def _disagreement(where: str, weights: str, name: str, stated: Any, implied: Any) -> ModelFileError:
    return ModelFileError(
        f"{where}: Param {name} is {stated!r} in the metadata, but the weights in {weights} "
        f"imply {implied!r}; the metadata does not describe these weights"
    )


class _LSTMEstimatorReader(MLReader):
    """Reads an Estimator's Params (what ``DefaultParamsWriter`` wrote) into ``cls`` only:
    another class's directory, or a fitted model's, is refused, and no other class is
    imported."""

    def __init__(self, cls: type[_NetworkEstimator]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> _NetworkEstimator:
        metadata = _read_metadata(self.sparkSession, path, self.cls)
        where = os.path.join(path, METADATA_DIR)
        if "sparklstm" in metadata:
            raise ModelFileError(
                f"{where}: names {_class_name(self.cls)}, an Estimator, but holds a fitted model "
                "(its metadata has a 'sparklstm' section); load it with its model class "
                "(LSTMClassificationModel, LSTMRegressionModel or LSTMSeq2SeqModel)"
            )
        instance = self.cls()
        instance._resetUid(metadata["uid"])
        _set_saved_params(instance, metadata, where)
        return instance
