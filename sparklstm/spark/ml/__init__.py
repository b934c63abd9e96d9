"""The ``pyspark.ml`` face of sparklstm: Estimators, Models and their persistence.

``LSTMClassifier``, ``LSTMRegressor`` and ``LSTMSeq2Seq`` are Estimators (:mod:`.estimators`)
whose Params (:mod:`.params`) are built from the options' one definition; ``fit`` calls
:func:`~sparklstm.spark.trainer.fit_distributed`. The fitted ``LSTMClassificationModel`` /
``LSTMRegressionModel`` (:mod:`.models`) hold the :class:`~sparklstm.model.SequenceModel` and the
training history and transform with :func:`~sparklstm.spark.inference.predict_dataframe`;
``LSTMSeq2SeqModel`` holds a :class:`~sparklstm.model.Seq2SeqModel` and transforms with
:func:`~sparklstm.spark.decoding.decode_dataframe`.
Sizes the data determines (``input_size`` or ``vocab_size``, the number of classes or
regression targets) are not Params: training reads them from the data. Saving and loading, as
Spark ML does it, on classic and Connect sessions: :mod:`.persistence`.

Examples
--------
>>> clf = LSTMClassifier(hiddenSizes=[32], epochs=5, batchSize=32)  # doctest: +SKIP
>>> model = clf.fit(train_df)  # doctest: +SKIP
>>> model.transform(test_df).select("prediction", "probability").show()  # doctest: +SKIP
>>> model.write().overwrite().save("/tmp/lstm")  # doctest: +SKIP
"""

from __future__ import annotations

from sparklstm.spark.ml.anomaly import LSTMAnomalyDetector, LSTMAnomalyModel
from sparklstm.spark.ml.estimators import LSTMClassifier, LSTMRegressor, LSTMSeq2Seq
from sparklstm.spark.ml.models import (
    LSTMClassificationModel,
    LSTMRegressionModel,
    LSTMSeq2SeqModel,
)
from sparklstm.spark.ml.persistence import (
    METADATA_VERSION,
    load_sequence_model,
    save_sequence_model,
)

__all__ = [
    "LSTMAnomalyDetector",
    "LSTMAnomalyModel",
    "LSTMClassifier",
    "LSTMRegressor",
    "LSTMSeq2Seq",
    "LSTMClassificationModel",
    "LSTMRegressionModel",
    "LSTMSeq2SeqModel",
    "METADATA_VERSION",
    "load_sequence_model",
    "save_sequence_model",
]

# Saved metadata names a class by module and name, and Spark ML's readers (PipelineModel.load)
# import that name: these classes are saved, and found, under this public module.
for _cls in (
    LSTMClassifier,
    LSTMRegressor,
    LSTMSeq2Seq,
    LSTMClassificationModel,
    LSTMRegressionModel,
    LSTMSeq2SeqModel,
):
    _cls.__module__ = __name__
