"""The model file of every model class: a bundle (:mod:`sparklstm.io.model_files`) whose JSON
document holds ``{"model": config, "metadata": {...}}`` and whose arrays are the parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = ["ModelFile", "load_model_file", "save_model_file"]

Model = TypeVar("Model")


def save_model_file(
    path: str | Path,
    config: Mapping[str, Any],
    params: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any] | None,
    *,
    kind: str,
    format_version: int,
) -> Path:
    """Write the bundle: a directory, or one ``.npz`` file if ``path`` ends in ``.npz``."""
    from sparklstm.io import model_files

    document = {"model": dict(config), "metadata": dict(metadata or {})}
    return model_files.save_bundle(path, document, params, kind=kind, format_version=format_version)


def load_model_file(
    path: str | Path,
    build: Callable[[Mapping[str, Any], Mapping[str, np.ndarray]], Model],
    *,
    kind: str,
    format_version: int,
    what: str,
) -> Model:
    """Read a bundle of ``kind`` and return ``build(config, arrays)`` with its ``metadata``
    attribute set; a config or array ``build`` rejects is a one-line ``ModelFileError``
    saying the file is not a valid ``what``."""
    from sparklstm.io import model_files

    document, arrays = model_files.load_bundle(
        path, kind=kind, supported_versions=(format_version,)
    )
    try:
        model = build(document["model"], arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise model_files.ModelFileError(f"{path}: not a valid {what}: {exc}") from exc
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise model_files.ModelFileError(
            f"{path}: not a valid {what}: metadata is not a JSON object"
        )
    model.metadata = dict(metadata)
    return model


class ModelFile:
    """``save``/``load`` of a model class: its ``config`` (with ``to_dict``) and ``params`` in a
    bundle of ``file_kind``; ``from_config`` and ``load_state_dict`` rebuild it."""

    file_kind: str
    file_version: int
    file_what: str  # in error messages: "not a valid <file_what>"

    def save(self, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the model: a directory (or a single ``.npz`` if ``path`` ends in ``.npz``)
        holding the parameters (``.npz``, no pickle) and a JSON manifest with the config."""
        return save_model_file(
            path,
            self.config.to_dict(),  # type: ignore[attr-defined]
            self.params,  # type: ignore[attr-defined]
            metadata,
            kind=self.file_kind,
            format_version=self.file_version,
        )

    @classmethod
    def load(cls, path: str | Path) -> Any:
        """Read a model written by :meth:`save`; never unpickles, checks every array's name
        and shape."""

        def build(config: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Any:
            model = cls.from_config(config)  # type: ignore[attr-defined]
            model.load_state_dict(arrays)
            return model

        return load_model_file(
            path, build, kind=cls.file_kind, format_version=cls.file_version, what=cls.file_what
        )
