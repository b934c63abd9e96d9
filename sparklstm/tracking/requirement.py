"""The one place that imports MLflow: an optional extra, never needed by the rest of sparklstm."""

from __future__ import annotations

from types import ModuleType

__all__ = ["INSTALL_HINT", "require_mlflow"]

INSTALL_HINT = "pip install 'sparklstm[mlflow]'"


def require_mlflow(what: str = "sparklstm.tracking") -> ModuleType:
    """The ``mlflow`` module; without it an ``ImportError`` saying what needs it and how to
    install it (``what needs the mlflow extra: pip install 'sparklstm[mlflow]'``)."""
    try:
        import mlflow
    except ImportError as exc:
        raise ImportError(f"{what} needs the mlflow extra: {INSTALL_HINT}") from exc
    return mlflow
