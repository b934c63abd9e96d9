"""Whether the recurrent kernels run their element-wise steps compiled (numba) or in NumPy.

The kernels (:mod:`sparklstm.nn.lstm_kernel`, :mod:`sparklstm.nn.gru_kernel`) take
``fused: bool | None``:

- ``None`` (the default everywhere): compiled when numba is installed (the ``fast`` extra,
  ``pip install 'sparklstm[fast]'``) and the environment variable ``SPARKLSTM_FUSED`` is not
  ``0``; NumPy otherwise.
- ``False``: NumPy, the reference implementation.
- ``True``: compiled, or an ImportError saying how to install it.

Both give the same values up to rounding (the compiled ``tanh`` is within 3 ulp of the correctly
rounded one; tested in ``tests/test_fused.py``), but not the same bits: a run is reproducible
bit for bit on machines that make the same choice. The variable is read at each call, so it
also reaches Spark's Python workers through ``spark.executorEnv.SPARKLSTM_FUSED``.
"""

from __future__ import annotations

import os
from functools import cache
from types import ModuleType

import numpy as np

__all__ = ["FUSED_ENV", "fused_steps", "fused_available"]

FUSED_ENV = "SPARKLSTM_FUSED"


@cache
def _compiled() -> ModuleType | None:
    try:
        from sparklstm.nn import numba_steps
    except ImportError:
        return None
    return numba_steps


def fused_available() -> bool:
    """True when numba is installed (the compiled steps can run)."""
    return _compiled() is not None


def fused_steps(dtype: np.dtype, fused: bool | None) -> ModuleType | None:
    """The compiled step functions to use for arrays of ``dtype``, or None for NumPy's."""
    if fused is False or np.dtype(dtype) not in (np.float32, np.float64):
        return None
    module = _compiled()
    if fused is None:
        return module if os.environ.get(FUSED_ENV, "1") != "0" else None
    if module is None:
        raise ImportError(
            "fused=True: the compiled recurrent steps need numba; "
            "install it with pip install 'sparklstm[fast]' or pass fused=None"
        )
    return module
