"""sparklstm: LSTM and GRU networks trained with NumPy BPTT, on one machine or on Spark."""

__version__ = "0.1.0"
