"""Numerics: recurrent layers (LSTM, peephole LSTM, CIFG, GRU), embedding, dense heads, losses
(NumPy only, no pyspark)."""

from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrent import CIFG, GRU, LSTM, make_stack

__all__ = ["CIFG", "GRU", "LSTM", "PackedLayout", "make_stack"]
