"""Build the archive that ships sparklstm to a cluster's executors with ``--py-files``.

    python -m sparklstm.packaging dist/sparklstm.zip      # what `make dist` runs

Spark puts every ``.zip`` given to ``--py-files`` (or ``spark.submit.pyFiles``) on the
``sys.path`` of the driver and of every executor's Python workers, so a zip of the ``sparklstm``
package is all the executors need from this project; its dependencies (numpy, pyarrow, pandas)
must be installed in the executors' Python (or shipped as a packed environment with
``--archives``, see the README). Only ``.py`` sources go in: no ``__pycache__`` and no data.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

__all__ = ["build_zip"]

# Fixed timestamps make the archive byte-identical for identical sources.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def build_zip(target: str | Path) -> Path:
    """Write a zip of the installed ``sparklstm`` package's sources to ``target``."""
    package = Path(__file__).resolve().parent
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            name = path.relative_to(package.parent).as_posix()
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    temporary.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="dist/sparklstm.zip")
    args = parser.parse_args(argv)
    path = build_zip(args.target)
    print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
