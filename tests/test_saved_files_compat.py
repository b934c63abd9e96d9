"""Files written before the codebase was reshaped (issue 14) still load and resume.

``tests/fixtures/main-86733a5/`` was written by the code of main at commit 86733a5: a
:class:`SequenceModel` file, a training checkpoint after 2 of 3 rounds, a fitted
``LSTMClassificationModel`` and an ``LSTMClassifier``'s Params, each with the outputs it gave
when it was written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from sparklstm import SequenceModel
from sparklstm.nn.fused import FUSED_ENV

FIXTURES = Path(__file__).parent / "fixtures" / "main-86733a5"


def _frame(spark):
    """The training rows the fixtures were fitted on (same generator, same seed)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 7, 3)).astype(np.float32)
    lengths = rng.integers(3, 8, size=24)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    rows = [(x[i, : lengths[i]].tolist(), int(y[i])) for i in range(24)]
    return spark.createDataFrame(rows, "features array<array<float>>, label long")


def test_an_old_model_file_loads_and_predicts_what_it_predicted(monkeypatch):
    """The NumPy kernels (which wrote the fixture) give its bits exactly; the compiled steps
    (sparklstm.nn.fused) round differently, within float32's last bits."""
    model = SequenceModel.load(FIXTURES / "sequence_model")
    expected = np.load(FIXTURES / "sequence_model_expected.npz", allow_pickle=False)
    assert model.config.cell == "gru" and model.config.hidden_sizes == (5, 4)
    compiled = model.predict_proba(expected["x"], expected["lengths"])
    np.testing.assert_allclose(compiled, expected["probabilities"], rtol=0, atol=1e-6)
    monkeypatch.setenv(FUSED_ENV, "0")
    np.testing.assert_array_equal(
        model.predict_proba(expected["x"], expected["lengths"]), expected["probabilities"]
    )


def test_an_old_checkpoint_resumes_to_the_uninterrupted_result(spark, tmp_path):
    from sparklstm.spark.trainer import fit_distributed

    df = _frame(spark)
    options = {
        "rounds": 3,
        "local_steps": 2,
        "batch_size": 6,
        "num_partitions": 2,
        "seed": 7,
        "checkpoint_every": 1,
        "keep_checkpoints": 1,
    }
    directory = tmp_path / "checkpoints"
    shutil.copytree(FIXTURES / "checkpoints", directory)
    resumed, history = fit_distributed(
        df,
        {"hidden_sizes": [4], "seed": 5},
        options,
        checkpoint_dir=str(directory),
        resume=True,
        progress=False,
    )
    fresh, fresh_history = fit_distributed(
        df, {"hidden_sizes": [4], "seed": 5}, options, progress=False
    )
    assert [row["round"] for row in history.rows] == [1, 2, 3]
    # The kernels' arithmetic changed since the checkpoint was written (issue 18: compiled
    # element-wise steps, one GEMM for both weight gradients), so the rounds before it and
    # the fresh run's agree to rounding, not to the bit.
    np.testing.assert_allclose(history["train_loss"], fresh_history["train_loss"], rtol=1e-5)
    for name, value in fresh.params.items():
        np.testing.assert_allclose(resumed.params[name], value, rtol=0, atol=1e-5, err_msg=name)


def test_old_spark_ml_directories_load(spark):
    from sparklstm.spark.ml import LSTMClassificationModel, LSTMClassifier

    fitted = LSTMClassificationModel.load(str(FIXTURES / "classification_model"))
    probabilities = fitted.transform(_frame(spark)).select("probability").collect()
    np.testing.assert_allclose(  # to rounding: see the model file's test
        np.array([row[0] for row in probabilities]),
        np.load(FIXTURES / "classification_model_expected.npy", allow_pickle=False),
        rtol=0,
        atol=1e-6,
    )
    assert fitted.getHiddenSizes() == [4] and fitted.getSeed() == 11
    estimator = LSTMClassifier.load(str(FIXTURES / "classifier"))
    assert estimator.getHiddenSizes() == [4]
    assert (estimator.getEpochs(), estimator.getBatchSize(), estimator.getLocalSteps()) == (2, 6, 2)
    assert estimator.getNumPartitions() == 2 and estimator.getSeed() == 11
    # Params added since take their defaults.
    assert estimator.getOptimizerOptions() == {} and estimator.getShuffle() is True
    assert estimator.getOuterLr() == 1.0 and estimator.getClipValue() is None
