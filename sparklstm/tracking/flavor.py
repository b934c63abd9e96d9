"""The ``sparklstm`` MLflow model flavour: a :class:`~sparklstm.model.SequenceModel` as an MLflow
model that ``mlflow.pyfunc.load_model(uri).predict(df)`` and ``mlflow.pyfunc.spark_udf(spark,
uri)`` score, with nothing pickled.

The MLflow model directory holds the model's own files (``data/model/manifest.json`` and
``data/model/arrays.npz``, written by :meth:`SequenceModel.save`: JSON and NumPy arrays, read
back without unpickling) beside MLflow's ``MLmodel`` and environment files. ``MLmodel`` names
this module as the ``python_function`` loader (``loader_module``, MLflow's custom-flavour
workflow), so loading imports ``sparklstm`` and reads those files: no ``cloudpickle``, no
``python_model.pkl``. The input columns (``features_col``, ``length_col``) and the batch size
are the pyfunc's ``model_config``; see :mod:`sparklstm.tracking.scoring` for the input and the
output columns, which the model's signature also records.

Loading needs ``sparklstm`` installed where the model is loaded (it is not on PyPI, so serve
with ``env_manager="local"``, the default of ``spark_udf``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparklstm.model import SequenceModel
from sparklstm.tracking.requirement import require_mlflow
from sparklstm.tracking.scoring import SequenceScorer

__all__ = [
    "FLAVOR_NAME",
    "input_example",
    "load_model",
    "log_model",
    "model_signature",
    "save_model",
    "sequence_type_of",
]

FLAVOR_NAME = "sparklstm"
BUNDLE_NAME = "model"  # the model's own directory, under the MLflow model's data/


SEQUENCE_TYPES = ("multivariate", "univariate", "tokens")


def sequence_type_of(model: SequenceModel, sequence_type: str | None = None) -> str:
    """How the features column holds a sequence for ``model``: ``"tokens"`` (token ids) for a
    token model; ``"multivariate"`` (a list of ``input_size`` numbers per step, the trainers'
    ``array<array<float>>``) or, for one feature per step, ``"univariate"`` (a number per step)
    for a float model. ``None``: tokens for a token model, else multivariate."""
    config = model.config
    if sequence_type is None:
        return "tokens" if config.uses_tokens else "multivariate"
    if sequence_type not in SEQUENCE_TYPES:
        raise ValueError(f"sequence_type must be one of {SEQUENCE_TYPES}, got {sequence_type!r}")
    if config.uses_tokens != (sequence_type == "tokens"):
        kind = "a token model" if config.uses_tokens else "a float model"
        raise ValueError(f"sequence_type {sequence_type!r} does not fit {kind}")
    if sequence_type == "univariate" and config.input_size != 1:
        raise ValueError(
            f"sequence_type 'univariate' is one number per step; the model takes "
            f"{config.input_size} (use 'multivariate')"
        )
    return sequence_type


def model_signature(
    model: SequenceModel,
    features_col: str = "features",
    length_col: str | None = None,
    sequence_type: str | None = None,
) -> Any:
    """The MLflow ``ModelSignature`` of ``model`` scored by :class:`SequenceScorer`: the
    features column (``array<array<double>>`` for multivariate sequences, ``array<double>`` for
    univariate ones, ``array<long>`` for token ids; see :func:`sequence_type_of`), the optional
    length column (``long``) and the output columns in the model's float type."""
    require_mlflow()
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    config = model.config
    kind = sequence_type_of(model, sequence_type)
    if kind == "tokens":
        features: Any = Array(DataType.long)
    elif kind == "univariate":
        features = Array(DataType.double)
    else:
        features = Array(Array(DataType.double))
    inputs = [ColSpec(features, features_col)]
    if length_col is not None:
        inputs.append(ColSpec(DataType.long, length_col, required=False))
    number = DataType.float if config.dtype == "float32" else DataType.double

    def per_step(type_: Any) -> Any:
        return Array(type_) if config.head == "all" else type_

    if config.task == "classification":
        outputs = [
            ColSpec(per_step(DataType.long), "prediction"),
            ColSpec(per_step(Array(number)), "probability"),
        ]
    else:
        value = number if config.output_size == 1 else Array(number)
        outputs = [ColSpec(per_step(value), "prediction")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def input_example(
    model: SequenceModel,
    features_col: str = "features",
    length_col: str | None = None,
    sequence_type: str | None = None,
) -> Any:
    """A one-row pandas DataFrame of the input ``model`` takes: a sequence of two steps of
    zeros (token ids, a number per step, or a list of ``input_size`` per step) and, with a
    ``length_col``, its length."""
    import pandas as pd

    kind = sequence_type_of(model, sequence_type)
    if kind == "tokens":
        step: Any = 0
    elif kind == "univariate":
        step = 0.0
    else:
        step = [0.0] * model.config.input_size
    row: dict[str, Any] = {features_col: [[step, step]]}
    if length_col is not None:
        row[length_col] = [2]
    return pd.DataFrame(row)


def _requirements() -> list[str]:
    from sparklstm import __version__

    return [f"sparklstm=={__version__}"]


def save_model(
    model: SequenceModel,
    path: str | Path,
    *,
    features_col: str = "features",
    length_col: str | None = None,
    sequence_type: str | None = None,
    batch_size: int = 512,
    mlflow_model: Any = None,
    signature: Any = None,
    pip_requirements: Sequence[str] | None = None,
    example: Any = None,
    **kwargs: Any,
) -> None:
    """Write ``model`` as an MLflow model directory at ``path`` (which must not exist).

    ``features_col``: the input column of sequences; ``length_col``: an optional input column
    of valid lengths, for padded sequences (default none: each sequence's own length counts;
    given, the column may still be left out of an input, but ``spark_udf`` must then be
    called with a ``struct`` of the columns); ``sequence_type``: how the features column holds
    a sequence, as the signature declares it (see :func:`sequence_type_of`; the scorer takes
    both float layouts); ``batch_size``: rows per forward pass.
    ``signature`` defaults to :func:`model_signature`, ``pip_requirements`` to this sparklstm
    version, ``example`` (MLflow's ``input_example``) to :func:`input_example`. Other keyword
    arguments go to ``mlflow.pyfunc.save_model``.
    """
    mlflow = require_mlflow()
    from mlflow.models import Model

    if not isinstance(model, SequenceModel):
        raise TypeError(f"model must be a SequenceModel, got {type(model).__name__}")
    for role, name in (("features_col", features_col), ("length_col", length_col)):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{role} must be a non-empty column name, got {name!r}")
    if features_col == length_col:
        raise ValueError(f"features_col and length_col are both {features_col!r}; name two columns")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    from sparklstm import __version__
    from sparklstm.model.sequence_model import FORMAT_VERSION

    mlflow_model = Model() if mlflow_model is None else mlflow_model
    mlflow_model.add_flavor(
        FLAVOR_NAME,
        sparklstm_version=__version__,
        model_format_version=FORMAT_VERSION,
        data=f"data/{BUNDLE_NAME}",
    )
    with tempfile.TemporaryDirectory(prefix="sparklstm-mlflow-") as scratch:
        bundle = model.save(Path(scratch) / BUNDLE_NAME, metadata=getattr(model, "metadata", None))
        mlflow.pyfunc.save_model(
            str(path),
            loader_module=__name__,
            data_path=str(bundle),
            mlflow_model=mlflow_model,
            signature=model_signature(model, features_col, length_col, sequence_type)
            if signature is None
            else signature,
            pip_requirements=_requirements() if pip_requirements is None else pip_requirements,
            input_example=input_example(model, features_col, length_col, sequence_type)
            if example is None
            else example,
            model_config={
                "features_col": features_col,
                "length_col": length_col,
                "batch_size": batch_size,
            },
            **kwargs,
        )


def log_model(
    model: SequenceModel,
    name: str = "model",
    *,
    run_id: str | None = None,
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> Any:
    """Log ``model`` to an MLflow run (``run_id``, else the active run, else a new one) as the
    model ``name``; returns MLflow's ``ModelInfo`` (its ``model_uri`` loads it back). Keyword
    arguments are :func:`save_model`'s (``features_col``, ``length_col``, ``batch_size``, ...).
    """
    mlflow = require_mlflow()
    return mlflow.models.Model.log(
        artifact_path=None,  # MLflow 3's deprecated spelling of name, still a required argument
        name=name,
        flavor=sys.modules[__name__],
        flavor_name=FLAVOR_NAME,
        run_id=run_id,
        registered_model_name=registered_model_name,
        model=model,
        **kwargs,
    )


def load_model(model_uri: str) -> SequenceModel:
    """The :class:`SequenceModel` of an MLflow model written by :func:`save_model` or
    :func:`log_model` (``runs:/<run_id>/model``, ``models:/...``, a local path)."""
    mlflow = require_mlflow()
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    flavors = mlflow.models.Model.load(str(local)).flavors
    if FLAVOR_NAME not in flavors:
        raise ValueError(
            f"{model_uri} is not a sparklstm MLflow model (flavours: {sorted(flavors)}); load it "
            "with mlflow.pyfunc.load_model instead"
        )
    return SequenceModel.load(local / flavors[FLAVOR_NAME]["data"])


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> SequenceScorer:
    """MLflow's entry point (``loader_module``): the scorer of the model in ``data_path``."""
    settings = {"features_col": "features", "length_col": None, "batch_size": 512}
    settings.update(model_config or {})
    return SequenceScorer(SequenceModel.load(data_path), **settings)
