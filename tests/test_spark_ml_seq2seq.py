"""``LSTMSeq2Seq``, the Spark ML estimator of encoder-decoders, on both kinds of session: its
``fit`` is ``fit_distributed`` with the Params' options, its model's ``transform`` appends what
the core model decodes (greedy, beam search, forecasts; rows kept), and both save and reload as
Spark ML keeps its own, alone and inside a ``PipelineModel``, with the loaders' checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparklstm.io.model_files import ModelFileError
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.ml import LSTMClassificationModel, LSTMSeq2Seq, LSTMSeq2SeqModel
from sparklstm.spark.trainer import fit_distributed


def reversal_pairs(n, seed):
    """Token sources (ids 3..7) and their reversals."""
    rng = np.random.default_rng(seed)
    sources = [rng.integers(3, 8, size=k) for k in rng.integers(2, 7, size=n)]
    return sources, [s[::-1].copy() for s in sources]


def pair_table(sources, targets, dtype=None, validation=None):
    dtype = dtype or pa.int64()
    columns = {
        "row": pa.array(np.arange(len(sources)), pa.int64()),
        "source": pa.array([s.tolist() for s in sources], pa.list_(dtype)),
        "target": pa.array([t.tolist() for t in targets], pa.list_(dtype)),
    }
    if validation is not None:
        columns["isVal"] = pa.array(validation, pa.bool_())
    return pa.table(columns)


ESTIMATOR = dict(
    featuresCol="source",
    labelCol="target",
    hiddenSizes=[12],
    embeddingDim=6,
    epochs=3,
    batchSize=16,
    learningRate=0.02,
    localSteps=3,
    numPartitions=2,
    seed=5,
)


@pytest.fixture(scope="module")
def fitted(any_spark):
    """One estimator fit on 160 reversal pairs (a quarter of them validation rows), with the
    same run through ``fit_distributed`` for comparison."""
    sources, targets = reversal_pairs(160, 0)
    validation = (np.arange(160) % 4 == 0).tolist()
    df = any_spark.createDataFrame(pair_table(sources, targets, validation=validation))
    estimator = LSTMSeq2Seq(**ESTIMATOR, validationIndicatorCol="isVal")
    model = estimator.fit(df)
    direct, history = fit_distributed(
        df.where(~df["isVal"]),
        estimator._model_options(),
        estimator._training_config(),
        features_col="source",
        label_col="target",
        validation=df.where(df["isVal"]),
        progress=False,
    )
    return model, direct, history, (sources, targets), df


def test_fit_is_fit_distributed_with_the_params_options(fitted):
    model, direct, history, _, _ = fitted
    assert isinstance(model, LSTMSeq2SeqModel)
    core = model.seq2seqModel
    assert isinstance(core, Seq2SeqModel)
    assert core.config == direct.config
    assert core.config.hidden_sizes == (12,) and core.config.attention == "luong"
    assert core.config.source_vocab_size == 8 and core.config.target_vocab_size == 8
    for name, value in direct.params.items():
        np.testing.assert_array_equal(core.params[name], value, err_msg=name)
    # The round history, validation included, is the run's.
    assert [row["train_loss"] for row in model.history] == history["train_loss"]
    assert "val_sequence_accuracy" in model.history[-1]
    # The fitted model keeps the estimator's Params.
    assert model.getHiddenSizes() == [12] and model.getFeaturesCol() == "source"


def test_transform_appends_what_the_model_decodes_rows_kept(fitted):
    model, _, _, (sources, _), df = fitted
    core = model.seq2seqModel
    greedy = core.greedy_decode(sources, max_len=9)
    rows = model.setMaxLength(9).transform(df).select("row", "prediction", "logProbability")
    by_row = {r.row: r for r in rows.collect()}
    assert sorted(by_row) == list(range(len(sources)))
    for i in range(len(sources)):
        assert by_row[i].prediction == greedy.sequences[i].tolist()
        assert by_row[i].logProbability == pytest.approx(float(greedy.log_probs[i]), rel=1e-6)
    # Beam search through the Params, and the log-probability column left out.
    model.setBeamWidth(3).setLengthPenalty(0.0).setLogProbabilityCol("")
    try:
        beams = core.beam_search(sources, beam_width=3, max_len=9, length_penalty=0.0)
        decoded = model.transform(df)
        assert "logProbability" not in decoded.columns
        assert decoded.columns == [*df.columns, "prediction"]
        found = {r.row: r.prediction for r in decoded.select("row", "prediction").collect()}
        for i in range(len(sources)):
            assert found[i] == beams.sequences[i].tolist()
    finally:
        model.setBeamWidth(1).setLengthPenalty(0.6).setLogProbabilityCol("logProbability")
        model.setMaxLength(50)


def test_the_model_learns_reversal_through_the_estimator(any_spark):
    sources, targets = reversal_pairs(600, 1)
    test_sources, test_targets = reversal_pairs(100, 2)
    df = any_spark.createDataFrame(pair_table(sources, targets))
    options = {**ESTIMATOR, "hiddenSizes": [32], "epochs": 12, "localSteps": 5}
    model = LSTMSeq2Seq(**options).fit(df)
    test = any_spark.createDataFrame(pair_table(test_sources, test_targets))
    rows = model.transform(test).select("target", "prediction").collect()
    exact = np.mean([r.prediction == r.target for r in rows])
    assert exact > 0.9, exact


def test_forecasts_with_the_horizon_param(any_spark):
    rng = np.random.default_rng(3)
    windows = [
        np.sin(np.arange(k) * 0.7 + p)
        for k, p in zip(rng.integers(6, 10, 80), rng.uniform(0, 6, 80), strict=True)
    ]
    futures = [np.sin((len(w) + np.arange(4)) * 0.7 + 0) for w in windows]
    df = any_spark.createDataFrame(pair_table(windows, futures, pa.float64()))
    estimator = LSTMSeq2Seq(**{**ESTIMATOR, "epochs": 1, "attention": "none"})
    model = estimator.fit(df)
    core = model.seq2seqModel
    assert core.config.output_size == 1 and core.config.input_size == 1
    with pytest.raises(ValueError, match="horizon"):
        model.transform(df)
    rows = {r.row: r.prediction for r in model.setHorizon(4).transform(df).collect()}
    expected = core.forecast(windows, 4)
    for i in range(len(windows)):
        np.testing.assert_allclose(rows[i], expected[i, :, 0], rtol=1e-6)


def test_bad_params_fail_when_set_or_before_any_job():
    with pytest.raises(ValueError, match="samplingRate"):
        LSTMSeq2Seq(samplingRate=1.0)
    with pytest.raises(ValueError, match="attention"):
        LSTMSeq2Seq(attention="bahdanau")
    with pytest.raises(ValueError, match="beamWidth"):
        LSTMSeq2Seq().setBeamWidth(0)
    with pytest.raises(TypeError, match="unknown Param.*'dropout'"):
        LSTMSeq2Seq(dropout=0.2)
    # A combination is checked by _fit before it touches the data.
    with pytest.raises(ValueError, match="start_token and end_token must differ"):
        LSTMSeq2Seq(startToken=2, endToken=2)._fit(None)


def test_save_and_load_alone_and_in_a_pipeline(fitted, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    model, _, _, _, df = fitted
    path = str(tmp_path / "s2s")
    model.setBeamWidth(2)
    try:
        model.write().save(path)
    finally:
        model.setBeamWidth(1)
    loaded = LSTMSeq2SeqModel.load(path)
    assert loaded.uid == model.uid and loaded.getBeamWidth() == 2
    for name, value in model.seq2seqModel.params.items():
        np.testing.assert_array_equal(loaded.seq2seqModel.params[name], value, err_msg=name)
    assert [r["train_loss"] for r in loaded.history] == [r["train_loss"] for r in model.history]
    # The core model loads without Spark.
    core = Seq2SeqModel.load(Path(path) / "model")
    assert core.config == model.seq2seqModel.config
    expected = [r.prediction for r in model.setBeamWidth(2).transform(df).orderBy("row").collect()]
    model.setBeamWidth(1)
    again = [r.prediction for r in loaded.transform(df).orderBy("row").collect()]
    assert again == expected
    # Another class's loader refuses it in one line.
    with pytest.raises(ModelFileError, match="not a sparklstm.spark.ml.LSTMClassificationModel"):
        LSTMClassificationModel.load(path)
    with pytest.raises(FileExistsError, match="already exists"):
        model.write().save(path)

    # The estimator's Params, and a pipeline of it.
    estimator = LSTMSeq2Seq(**ESTIMATOR, beamWidth=3)
    estimator.write().save(str(tmp_path / "estimator"))
    reread = LSTMSeq2Seq.load(str(tmp_path / "estimator"))
    assert reread.getBeamWidth() == 3 and reread.getHiddenSizes() == [12]
    pipeline = Pipeline(stages=[LSTMSeq2Seq(**{**ESTIMATOR, "epochs": 1})]).fit(df)
    pipeline.write().save(str(tmp_path / "pipeline"))
    stage = PipelineModel.load(str(tmp_path / "pipeline")).stages[0]
    assert isinstance(stage, LSTMSeq2SeqModel)
    for name, value in pipeline.stages[0].seq2seqModel.params.items():
        np.testing.assert_array_equal(stage.seq2seqModel.params[name], value, err_msg=name)


def test_params_that_disagree_with_the_weights_are_refused(fitted, tmp_path):
    model, *_ = fitted
    path = tmp_path / "s2s"
    model.write().save(str(path))
    (part,) = (path / "metadata").glob("part-*")
    metadata = json.loads(part.read_text())
    metadata["paramMap"]["attention"] = "none"
    part.write_text(json.dumps(metadata) + "\n")
    for checksum in (path / "metadata").glob(".part-*.crc"):
        checksum.unlink()
    with pytest.raises(ModelFileError, match="Param attention is 'none' in the metadata"):
        LSTMSeq2SeqModel.load(str(path))


def test_a_wrapped_core_model_saves_params_that_agree(spark, tmp_path):
    core = Seq2SeqModel(
        head="seq2seq",
        source_vocab_size=9,
        target_vocab_size=7,
        hidden_sizes=[5, 4],
        bidirectional=True,
        attention="none",
        embedding_dim=3,
        seed=1,
    )
    wrapped = LSTMSeq2SeqModel(core)
    wrapped.write().save(str(tmp_path / "wrapped"))
    loaded = LSTMSeq2SeqModel.load(str(tmp_path / "wrapped"))
    assert loaded.getHiddenSizes() == [5, 4] and loaded.getAttention() == "none"
    assert loaded.getBidirectional() and loaded.getEmbeddingDim() == 3
    assert loaded.seq2seqModel.config == core.config
    with pytest.raises(TypeError, match="LSTMSeq2SeqModel holds a Seq2SeqModel"):
        LSTMSeq2SeqModel(object())
