"""Anomaly detection from a model of normal behaviour (issue 17, part 2).

A next-step LSTM forecaster is trained on windows of normal data; each step of a stream is
scored by how far it departs from the forecast (the squared error of the default ``mse``
forecaster, or the Gaussian negative log-likelihood of a head that predicts a mean and a
log-variance), the window score is the trailing mean of the step scores, and a threshold
calibrated on held-out normal data at a target false-alarm rate turns it into a flag. Streams
are scored chunk by chunk with carried state. :mod:`.metrics` has precision/recall/F1, the
area under the precision-recall curve and the UCR archive's top-score hit;
:mod:`.baselines` two simple detectors to compare with.
"""

from sparklstm.anomaly.detector import AnomalyDetector, AnomalyScores, Standardiser
from sparklstm.anomaly.metrics import (
    UCR_TOLERANCE,
    average_precision,
    flag_metrics,
    labelled_ranges,
    top_score_hit,
)
from sparklstm.anomaly.options import SCORES, AnomalyOptions
from sparklstm.anomaly.scoring import quantile_threshold, step_scores, window_scores

__all__ = [
    "SCORES",
    "UCR_TOLERANCE",
    "AnomalyDetector",
    "AnomalyOptions",
    "AnomalyScores",
    "Standardiser",
    "average_precision",
    "flag_metrics",
    "labelled_ranges",
    "quantile_threshold",
    "step_scores",
    "top_score_hit",
    "window_scores",
]
