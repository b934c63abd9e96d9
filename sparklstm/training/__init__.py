"""Training: the options (one definition for every view), the history and early stopping."""

from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import TrainOptions

__all__ = ["TrainOptions", "History", "EarlyStopping"]
