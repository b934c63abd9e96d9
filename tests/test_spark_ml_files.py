"""The Spark ML readers check what they load: a damaged or mismatched model directory (an
unknown metadata version, Params that disagree with the weights, a malformed history, another
class, a missing weights directory) fails with a one-line ``ModelFileError`` naming the path and
the problem, alone or as a stage of a saved ``PipelineModel``; an undamaged one still loads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.io.model_files import ModelFileError
from sparklstm.spark.ml import (
    LSTMClassificationModel,
    LSTMClassifier,
    LSTMRegressionModel,
    LSTMRegressor,
)

CLASS_PREFIX = "sparklstm.spark.ml."


@pytest.fixture(scope="module")
def sequences(spark):
    """24 float sequences of 2 features, labels 0..2, in one partition."""
    x = np.random.default_rng(0).normal(size=(24, 5, 2)).astype(np.float32)
    y = np.arange(24) % 3
    return x, spark.createDataFrame(numpy_to_arrow(x, y)).coalesce(1)


@pytest.fixture(scope="module")
def saved(sequences, tmp_path_factory):
    """A tiny classifier trained once, saved alone (``clf``) and as a PipelineModel's only
    stage (``pipeline``)."""
    from pyspark.ml import PipelineModel

    model = LSTMClassifier(hiddenSizes=[4], epochs=1, batchSize=8, seed=0).fit(sequences[1])
    root = tmp_path_factory.mktemp("saved")
    model.write().save(str(root / "clf"))
    PipelineModel(stages=[model]).write().save(str(root / "pipeline"))
    return model, root


def copy_of(saved, tmp_path: Path, name: str = "clf") -> Path:
    target = tmp_path / name
    shutil.copytree(saved[1] / name, target)
    return target


def edit_metadata(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the JSON in ``directory/metadata`` (and drop Hadoop's checksum of
    the file, as an operator editing it by hand would have to)."""
    (part,) = (directory / "metadata").glob("part-*")
    metadata = json.loads(part.read_text())
    change(metadata)
    part.write_text(json.dumps(metadata))
    (part.parent / f".{part.name}.crc").unlink(missing_ok=True)


def refused(load: Callable[[str], Any], path: Path, *fragments: str) -> str:
    """``load(path)`` raises a one-line ModelFileError naming ``path`` and each fragment."""
    with pytest.raises(ModelFileError) as caught:
        load(str(path))
    message = str(caught.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ------------------------------------------------------------------------------ loading
def test_an_undamaged_copy_loads_and_predicts_identically(saved, sequences, tmp_path):
    model = saved[0]
    loaded = LSTMClassificationModel.load(str(copy_of(saved, tmp_path)))
    assert loaded.uid == model.uid and loaded.history == model.history
    assert loaded.getHiddenSizes() == [4] and loaded.numClasses == 3
    x, df = sequences
    np.testing.assert_array_equal(
        loaded.sequenceModel.predict_proba(x), model.sequenceModel.predict_proba(x)
    )
    before = [row.probability for row in model.transform(df).collect()]
    assert [row.probability for row in loaded.transform(df).collect()] == before

    from pyspark.ml import PipelineModel

    pipeline = PipelineModel.load(str(copy_of(saved, tmp_path, "pipeline")))
    assert isinstance(pipeline.stages[0], LSTMClassificationModel)
    np.testing.assert_array_equal(
        pipeline.stages[0].sequenceModel.predict_proba(x), model.sequenceModel.predict_proba(x)
    )


def test_a_wrapped_sequence_model_saves_params_that_agree_and_old_saves_still_load(spark, tmp_path):
    """A Model wrapped around a SequenceModel keeps the default Params (hiddenSizes [64]):
    it is saved with the Params its weights imply, and a directory the earlier writer left
    (defaults that disagree with the weights) loads with the weights' values."""
    from pyspark.ml.util import DefaultParamsWriter

    from sparklstm.spark.ml import METADATA_VERSION, save_sequence_model

    core = SequenceModel(input_size=2, cell="gru", hidden_sizes=[3], output_size=2, seed=0)
    wrapped = LSTMRegressionModel(
        SequenceModel(input_size=2, hidden_sizes=[5], task="regression", output_size=1)
    )
    wrapped.write().save(str(tmp_path / "new"))
    (part,) = (tmp_path / "new" / "metadata").glob("part-*")
    assert json.loads(part.read_text())["paramMap"]["hiddenSizes"] == [5]
    assert LSTMRegressionModel.load(str(tmp_path / "new")).getHiddenSizes() == [5]

    # What the writer wrote before it made the Params agree: the Params as they were.
    old = LSTMClassificationModel(core)
    extra = {
        "sparklstm": {
            "metadataVersion": METADATA_VERSION,
            "task": "classification",
            "history": None,
        }
    }
    DefaultParamsWriter.saveMetadata(old, str(tmp_path / "old"), spark, extraMetadata=extra)
    save_sequence_model(spark, core, str(tmp_path / "old" / "model"))
    loaded = LSTMClassificationModel.load(str(tmp_path / "old"))
    assert loaded.getHiddenSizes() == [3] and loaded.getCellType() == "gru"
    assert not loaded.hasSummary


# ------------------------------------------------------------------------------ damage
def test_an_unknown_metadata_version_is_refused(saved, tmp_path):
    path = copy_of(saved, tmp_path)
    edit_metadata(path, lambda m: m["sparklstm"].update(metadataVersion=99))
    refused(LSTMClassificationModel.load, path, "metadataVersion 99", "supported: 1")


@pytest.mark.parametrize(
    ("param", "value", "implied"),
    [
        ("hiddenSizes", [16], "[4]"),
        ("cellType", "gru", "'lstm'"),
        ("bidirectional", True, "False"),
        ("head", "all", "'last'"),
        ("dropout", 0.5, "0.0"),
        ("vocabSize", 50, "None"),
        ("embeddingDim", 16, "None"),
        ("numClasses", 5, "3"),
    ],
)
def test_params_that_disagree_with_the_weights_are_refused(saved, tmp_path, param, value, implied):
    path = copy_of(saved, tmp_path)
    edit_metadata(path, lambda m: m["paramMap"].update({param: value}))
    refused(LSTMClassificationModel.load, path, f"Param {param} is {value!r}", implied)


def test_an_edited_default_that_disagrees_with_the_weights_is_refused(saved, tmp_path):
    path = copy_of(saved, tmp_path)
    edit_metadata(path, lambda m: m["defaultParamMap"].update(cellType="peephole"))
    refused(LSTMClassificationModel.load, path, "Param cellType is 'peephole'", "'lstm'")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda h: "broken", "history is a string"),
        (lambda h: dict(h, rows=[1, 2]), "row 0 is a number"),
        (lambda h: dict(h, rows=5), "rows is a number"),
        (lambda h: dict(h, summary=[]), "summary is an array"),
        (lambda h: dict(h, best_round="3"), "best_round is a string"),
    ],
    ids=["string", "rows-of-numbers", "rows-a-number", "summary-an-array", "best-round-a-string"],
)
def test_a_malformed_history_is_refused(saved, tmp_path, change, problem):
    path = copy_of(saved, tmp_path)
    edit_metadata(path, lambda m: m["sparklstm"].update(history=change(m["sparklstm"]["history"])))
    refused(LSTMClassificationModel.load, path, problem)


def test_an_unknown_or_invalid_param_is_refused(saved, tmp_path):
    path = copy_of(saved, tmp_path)
    edit_metadata(path, lambda m: m["paramMap"].update(colour="red"))
    refused(LSTMClassificationModel.load, path, "'colour'", "LSTMClassificationModel")

    def invalid(metadata):
        del metadata["paramMap"]["colour"]
        metadata["paramMap"]["batchSize"] = 0

    edit_metadata(path, invalid)
    refused(LSTMClassificationModel.load, path, "Param batchSize", "batchSize must be >= 1")


@pytest.mark.parametrize(
    ("load", "fragments"),
    [
        (LSTMRegressionModel.load, ("LSTMClassificationModel", "not a", "LSTMRegressionModel")),
        (LSTMClassifier.load, ("LSTMClassificationModel", "not a", "LSTMClassifier")),
        (LSTMRegressor.load, ("LSTMClassificationModel", "not a", "LSTMRegressor")),
    ],
    ids=["LSTMRegressionModel", "LSTMClassifier", "LSTMRegressor"],
)
def test_another_of_our_classes_is_refused(saved, tmp_path, load, fragments):
    refused(load, copy_of(saved, tmp_path), *fragments)


def test_an_estimator_directory_is_not_a_model(spark, tmp_path):
    LSTMClassifier(hiddenSizes=[4]).save(str(tmp_path / "est"))
    refused(LSTMClassificationModel.load, tmp_path / "est", "LSTMClassifier", "not a")


@pytest.mark.parametrize(
    ("named", "problem"),
    [
        ("LSTMRegressionModel", "classification"),  # another of our models
        ("LSTMClassifier", "fitted model"),  # ours, but an Estimator
    ],
)
def test_a_pipeline_stage_of_the_wrong_class_is_refused(saved, tmp_path, named, problem):
    from pyspark.ml import PipelineModel

    path = copy_of(saved, tmp_path, "pipeline")
    (stage,) = (path / "stages").iterdir()
    edit_metadata(stage, lambda m: m.update({"class": CLASS_PREFIX + named}))
    refused(PipelineModel.load, path, str(stage), named, problem)


def test_missing_weights_or_metadata_are_named(saved, tmp_path):
    path = copy_of(saved, tmp_path)
    shutil.rmtree(path / "model")
    refused(LSTMClassificationModel.load, path, str(path / "model"))
    shutil.rmtree(path / "metadata")
    refused(LSTMClassificationModel.load, path, "metadata")
