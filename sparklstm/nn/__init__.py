"""Numerics: recurrent layers, embedding, dense heads, losses (NumPy only, no pyspark)."""

from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrent import GRU, LSTM

__all__ = ["GRU", "LSTM", "PackedLayout"]
