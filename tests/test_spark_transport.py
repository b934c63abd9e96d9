"""Payloads above the inline limit travel as session files, with the same results."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark import transport
from sparklstm.spark.inference import predict_dataframe
from sparklstm.spark.trainer import fit_distributed
from sparklstm.spark.transport import Parcel, receive, ship


def test_a_small_payload_travels_inline_and_a_parcel_is_one_or_the_other():
    sent = ship(None, b"abc", "unused.npz")  # no session needed: nothing is sent
    assert sent.parcel == Parcel(data=b"abc") and receive(sent.parcel) == b"abc"
    with pytest.raises(ValueError, match="either data or a file"):
        Parcel()
    with pytest.raises(ValueError, match="either data or a file"):
        Parcel(data=b"x", file="x.npz")


def _round_files(batches):
    """The run payload files this executor holds (in its SparkFiles directory)."""
    from pathlib import Path

    from pyspark import SparkFiles

    for _ in batches:
        pass
    root = Path(SparkFiles.getRootDirectory())
    names = sorted(p.name for p in root.glob("sparklstm-*-round-*.npz"))
    yield pa.RecordBatch.from_pydict({"names": pa.array([names], pa.list_(pa.string()))})


def test_parameters_and_models_sent_as_session_files_give_the_same_results(any_spark, monkeypatch):
    x, y, lengths = noisy_sines(240, 12, 3, np.random.default_rng(2), min_len=4)
    df = any_spark.createDataFrame(numpy_to_arrow(x, y, lengths)).repartition(2)
    validation = any_spark.createDataFrame(numpy_to_arrow(x[:60], y[:60], lengths[:60]))
    model = {"input_size": 1, "hidden_sizes": [8], "output_size": 3, "seed": 0}
    options = {"rounds": 5, "local_steps": 2, "batch_size": 16, "seed": 1}
    inline, inline_history = fit_distributed(
        df, model, options, validation=validation, progress=False
    )

    monkeypatch.setattr(transport, "INLINE_LIMIT", 0)  # every payload as a session file
    filed, history = fit_distributed(df, model, options, validation=validation, progress=False)
    for name, value in inline.params.items():
        np.testing.assert_array_equal(filed.params[name], value, err_msg=name)
    assert history["val_loss"] == inline_history["val_loss"]
    # Each executor deleted the run's rounds before the last two (5 rounds: 3 and 4 remain).
    held = any_spark.range(1).mapInArrow(_round_files, "names array<string>").first().names
    rounds = sorted(int(name.rsplit("-", 1)[1].removesuffix(".npz")) for name in held)
    assert rounds == [3, 4]

    table = numpy_to_arrow(x, y, lengths).append_column("id", pa.array(np.arange(240)))
    scored = predict_dataframe(filed, any_spark.createDataFrame(table)).toArrow()
    ids = scored.column("id").to_numpy()
    assert sorted(ids) == list(range(240))
    probability = np.array(scored.column("probability").to_pylist())
    np.testing.assert_allclose(probability, filed.predict_proba(x, lengths)[ids], atol=1e-6)
