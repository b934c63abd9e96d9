"""What a training run's options, rounds and summary become in an experiment tracker: flat
string parameters within MLflow's length limits, and finite numbers as metrics (no MLflow here).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "PARAM_KEY_LIMIT",
    "PARAM_VALUE_LIMIT",
    "flat_params",
    "finite_metrics",
    "numeric_leaves",
]

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation: MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH).
PARAM_KEY_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
_ELLIPSIS = "..."


def _leaves(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of nested mappings (an empty mapping is a leaf)."""
    if isinstance(value, Mapping) and value:
        for name, item in value.items():
            yield from _leaves(item, f"{key}.{name}" if key else str(name))
    else:
        yield key, value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _text(value: Any) -> str:
    """A parameter value as text: strings as they are, everything else as JSON (tuples as
    lists, None as null, True as true)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_plain)


def flat_params(sections: Mapping[str, Any]) -> dict[str, str]:
    """Nested options as flat MLflow parameters: ``{"training": {"lr": 0.01}}`` gives
    ``{"training.lr": "0.01"}``. A value longer than MLflow's limit is cut to it (ending in
    ``...``) and a key longer than its limit is left out, each with a logged warning."""
    params: dict[str, str] = {}
    for key, value in _leaves(sections, ""):
        if len(key) > PARAM_KEY_LIMIT:
            logger.warning(
                "parameter %r... not logged: its name is longer than MLflow's %d characters",
                key[:40],
                PARAM_KEY_LIMIT,
            )
            continue
        text = _text(value)
        if len(text) > PARAM_VALUE_LIMIT:
            logger.warning(
                "parameter %r cut to MLflow's %d characters (it has %d)",
                key,
                PARAM_VALUE_LIMIT,
                len(text),
            )
            text = text[: PARAM_VALUE_LIMIT - len(_ELLIPSIS)] + _ELLIPSIS
        params[key] = text
    return params


def _finite_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def finite_metrics(row: Mapping[str, Any], leave_out: tuple[str, ...] = ()) -> dict[str, float]:
    """The entries of a history row that are finite numbers (no bools, None, NaN or lists),
    as floats, except the keys ``leave_out`` (e.g. the round number, logged as the step)."""
    return {
        key: float(value)
        for key, value in row.items()
        if key not in leave_out and _finite_number(value)
    }


def numeric_leaves(document: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The finite numbers of a nested document under dotted keys starting with ``prefix``:
    ``{"validation": {"loss": 0.3}}`` gives ``{"PREFIX.validation.loss": 0.3}``."""
    return {
        key: float(value) for key, value in _leaves({prefix: document}, "") if _finite_number(value)
    }
