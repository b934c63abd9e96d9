"""The CIFG cell on Spark (both session kinds): with one partition and one round per epoch,
fit_distributed equals the one-process trainer bit for bit, for a sequence model (stacked,
bidirectional, dropout) and for a seq2seq model."""

from __future__ import annotations

import numpy as np

from sparklstm import SequenceModel
from sparklstm.model.seq2seq import Seq2SeqModel
from sparklstm.spark.partitions import training_row_order
from sparklstm.spark.schema import Columns
from sparklstm.spark.trainer import fit_distributed
from tests.test_spark_seq2seq import pair_table, reversal_pairs
from tests.test_spark_trainer import assert_params_equal, sines, training_order


def test_one_partition_sequence_model_is_the_one_process_trainer_bit_for_bit(any_spark):
    x, y, lengths = sines(120, seed=0)
    config = {
        "input_size": 1,
        "cell": "cifg",
        "hidden_sizes": [8, 6],
        "bidirectional": True,
        "dropout": 0.25,
        "output_size": 3,
        "seed": 3,
    }
    options = {"epochs": 2, "batch_size": 16, "seed": 11, "lr": 0.01}
    df, order = training_order(any_spark, x, y, lengths)
    local = SequenceModel(**config)
    start = {k: v.copy() for k, v in local.params.items()}
    local.fit(x[order], y[order], lengths[order], progress=False, **options)

    distributed, history = fit_distributed(
        df, config, {**options, "num_partitions": 0}, progress=False
    )
    assert distributed.config.cell == "cifg"
    assert history.summary["rounds_per_epoch"] == 1 and len(history) == 2
    assert distributed.params["rnn.weight_ih_l0"].shape == (3 * 8, 1)
    assert_params_equal(distributed.params, local.params)
    assert any(not np.array_equal(start[k], v) for k, v in local.params.items())


def test_one_partition_seq2seq_model_is_the_one_process_trainer_bit_for_bit(any_spark):
    model = {
        "head": "seq2seq",
        "cell": "cifg",
        "hidden_sizes": [8],
        "bidirectional": True,
        "embedding_dim": 6,
        "seed": 3,
    }
    sources, targets = reversal_pairs(80, 0)
    df = any_spark.createDataFrame(pair_table(sources, targets)).coalesce(1)
    keys = training_row_order(df, Columns("source", "target"))
    order = [row.row for row in df.sortWithinPartitions(*keys).select("row").collect()]
    options = {"epochs": 2, "batch_size": 16, "seed": 11, "lr": 0.01, "clip_norm": 5.0}
    local = Seq2SeqModel(**model, source_vocab_size=8, target_vocab_size=8)
    local.fit([sources[i] for i in order], [targets[i] for i in order], **options)

    distributed, history = fit_distributed(
        df,
        model,
        {**options, "num_partitions": 0},
        features_col="source",
        label_col="target",
        progress=False,
    )
    assert isinstance(distributed, Seq2SeqModel) and distributed.config == local.config
    assert len(history) == 2
    for name, value in local.params.items():
        np.testing.assert_array_equal(distributed.params[name], value, err_msg=name)
