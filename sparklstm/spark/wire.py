"""The bytes that travel between the driver and the tasks: parameters out, results back.

Format: an uncompressed ``.npz`` (a zip of ``.npy`` members, read back with
``allow_pickle=False``) whose member ``__header__`` is a 1-D ``uint8`` array holding a UTF-8
JSON object of plain scalars. Array names may contain ``/`` (``"params/rnn.weight_ih_l0"``,
``"states/3/optim/exp_avg/head.weight"``). Nothing is ever unpickled: a task can only send
back arrays and JSON scalars, and the driver can only read those.

Because they are plain bytes, parameters reach the tasks inside the task function itself (no
broadcast variable, which Spark Connect does not have), and results come back as one Arrow row
per partition that the driver collects and merges in partition order.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "pack",
    "unpack",
    "encode_payload",
    "decode_payload",
    "encode_result",
    "decode_result",
]

_HEADER = "__header__"


def pack(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """``header`` (JSON scalars) and ``arrays`` as one ``.npz`` byte string."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, mode="w", compression=zipfile.ZIP_STORED) as archive:
        members = {_HEADER: np.frombuffer(json.dumps(dict(header)).encode("utf-8"), np.uint8)}
        members.update(arrays)
        for name, array in members.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Inverse of :func:`pack` (never unpickles)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
    return header, arrays


def _prefixed(prefix: str, arrays: Mapping[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    return {f"{prefix}/{name}": value for name, value in (arrays or {}).items()}


def _under(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    start = len(prefix) + 1
    return {name[start:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


# ------------------------------------------------------------------ driver -> task: a payload
def encode_payload(
    params: Mapping[str, np.ndarray],
    state: Mapping[str, np.ndarray] | None = None,
    states: Mapping[int, Mapping[str, np.ndarray]] | None = None,
    carried: Mapping[int, Mapping[str, np.ndarray]] | None = None,
) -> bytes:
    """The round's parameters, the averaged optimizer state (policy ``average``), the
    per-partition optimizer states (policy ``local``) and the per-partition recurrent states
    that streams carry from round to round (:mod:`sparklstm.spark.streams`)."""
    arrays = _prefixed("params", params)
    arrays.update(_prefixed("state", state))
    for partition, arrays_of_partition in (states or {}).items():
        arrays.update(_prefixed(f"states/{int(partition)}", arrays_of_partition))
    for partition, arrays_of_partition in (carried or {}).items():
        arrays.update(_prefixed(f"carried/{int(partition)}", arrays_of_partition))
    header = {
        "has_state": state is not None,
        "partitions": sorted(int(p) for p in states or {}),
        "carried": sorted(int(p) for p in carried or {}),
    }
    return pack(header, arrays)


def decode_payload(data: bytes) -> dict[str, Any]:
    """``{"params": ..., "state": ... or None, "states": {partition: ...}, "carried":
    {partition: ...}}``."""
    header, arrays = unpack(data)
    return {
        "params": _under("params", arrays),
        "state": _under("state", arrays) if header["has_state"] else None,
        "states": {p: _under(f"states/{p}", arrays) for p in header["partitions"]},
        "carried": {p: _under(f"carried/{p}", arrays) for p in header.get("carried", [])},
    }


# ------------------------------------------------------------------- task -> driver: a result
_RESULT_SCALARS = (
    "contributors",
    "examples",
    "weight",
    "steps",
    "loss_sum",
    "metric_sum",
    "max_grad_norm",
    "state_step_sum",
    "sq_delta_sum",
    "compute_max",
    "compute_sum",
    "chunks_read",
    "peak_rss_bytes",
)


def encode_result(result: Any) -> bytes:
    """A :class:`~sparklstm.spark.rounds.WorkerResult` as bytes."""
    header: dict[str, Any] = {name: getattr(result, name) for name in _RESULT_SCALARS}
    arrays: dict[str, np.ndarray] = {}
    for name in ("params", "state"):
        mean = getattr(result, name)
        header[f"{name}_weight"] = mean.weight
        header[f"{name}_kind"] = "raw" if mean.raw is not None else "total"
        vector = mean.raw if mean.raw is not None else mean.total
        if vector is not None:
            arrays[name] = vector
    for partition, arrays_of_partition in result.states.items():
        arrays.update(_prefixed(f"states/{int(partition)}", arrays_of_partition))
    header["partitions"] = sorted(int(p) for p in result.states)
    for partition, arrays_of_partition in result.carried.items():
        arrays.update(_prefixed(f"carried/{int(partition)}", arrays_of_partition))
    header["carried"] = sorted(int(p) for p in result.carried)
    return pack(header, arrays)


def decode_result(data: bytes) -> Any:
    """Inverse of :func:`encode_result`."""
    from sparklstm.spark.rounds import WeightedMean, WorkerResult

    header, arrays = unpack(data)
    means = {}
    for name in ("params", "state"):
        vector = arrays.get(name)
        raw = vector if header[f"{name}_kind"] == "raw" else None
        total = vector if header[f"{name}_kind"] == "total" else None
        means[name] = WeightedMean(float(header[f"{name}_weight"]), raw, total)
    return WorkerResult(
        **{name: header[name] for name in _RESULT_SCALARS},
        params=means["params"],
        state=means["state"],
        states={p: _under(f"states/{p}", arrays) for p in header["partitions"]},
        carried={p: _under(f"carried/{p}", arrays) for p in header.get("carried", [])},
    )
