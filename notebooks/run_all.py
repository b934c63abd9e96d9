"""Re-executes the notebooks in place with their full settings, so that the stored outputs are
those of a complete run on this machine:

    .venv/bin/python notebooks/run_all.py                  # all four notebooks
    .venv/bin/python notebooks/run_all.py quickstart       # some of them

Each notebook runs top to bottom with nbclient in a fresh kernel on this interpreter (a kernel
spec written to a temporary directory, so the user's Jupyter set-up does not matter), in a
temporary working directory (nothing is written into the repository but the notebook), with
``SPARKLSTM_NOTEBOOK_FAST`` unset, Spark's Python workers on this interpreter and figures
embedded as PNG. A notebook is written back only if every cell ran without error and no output
names a path of this machine (the repository, the home or the temporary directory).

What changes on every run without meaning anything is left out, so that a re-run gives a small
diff: the cells' execution timestamps, and the kernel spec and interpreter details of the
notebook's metadata (it keeps the standard ``python3`` kernel spec, which Jupyter and VS Code
map to the reader's own Python 3).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
NAMES = ("quickstart", "forecasting", "text_generation", "seq2seq")
KERNEL_NAME = "sparklstm-notebooks"
CELL_TIMEOUT = 1800  # seconds per cell
STORED_KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}
STORED_LANGUAGE_INFO = {"name": "python"}


# The kernel keeps what the JVM writes straight to the process's stderr (Java's and log4j's
# start-up lines, printed before any log level applies, with the host's name and address) on
# this command's console instead of the notebook: the stored outputs are what the Python code
# prints, as on a cluster, where the driver's JVM logs to its own files.
KERNEL_ARGV = [
    sys.executable,
    "-m",
    "ipykernel_launcher",
    "-f",
    "{connection_file}",
    "--IPKernelApp.capture_fd_output=False",
]
# Set in the kernel on top of this process's environment: the full settings (the notebooks
# test for "1"), Spark's Python workers on this interpreter, figures as PNG outputs.
KERNEL_ENV = {
    "SPARKLSTM_NOTEBOOK_FAST": "0",
    "PYSPARK_PYTHON": sys.executable,
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


def machine_paths(workdir: Path) -> list[str]:
    """Paths of this machine that must not appear in a stored output."""
    paths = {str(HERE.parent), str(Path.home()), tempfile.gettempdir(), str(workdir)}
    paths |= {os.path.realpath(p) for p in paths}
    return sorted(p for p in paths if len(p) > 1)


def output_texts(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(cell index, text) of every text output of the notebook's code cells."""
    texts = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if "text" in output:
                texts.append((index, output["text"]))
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/") or mime == "application/json":
                    texts.append((index, value if isinstance(value, str) else str(value)))
    return texts


def tidy(nb: nbformat.NotebookNode) -> None:
    """Drop what changes on every run: execution timestamps, the temporary kernel spec."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = dict(STORED_KERNELSPEC)
    nb.metadata["language_info"] = dict(STORED_LANGUAGE_INFO)
    nb.metadata.pop("widgets", None)


def execute(name: str, kernel_dirs: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    path = HERE / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"sparklstm-{name}-") as workdir:
        client = nbclient.NotebookClient(
            nb,
            km=KernelManager(
                kernel_name=KERNEL_NAME,
                kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dirs]),
            ),
            timeout=CELL_TIMEOUT,
            startup_timeout=120,
            record_timing=False,
            coalesce_streams=True,  # one stdout and one stderr output per cell, as Jupyter shows
            resources={"metadata": {"path": workdir}},
        )
        client.execute()  # raises CellExecutionError (with the cell's traceback) on failure
        leaks = [
            (index, path)
            for index, text in output_texts(nb)
            for path in machine_paths(Path(workdir))
            if path in text
        ]
    if leaks:
        found = ", ".join(f"cell {index}: {path}" for index, path in leaks)
        raise SystemExit(f"{name}: outputs name paths of this machine ({found}); not written")
    tidy(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    size = path.stat().st_size / 1024
    print(f"{name}: {time.perf_counter() - started:.0f} s, {size:.0f} KiB -> {path.name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of {', '.join(NAMES)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}: choose among {', '.join(NAMES)}")
    from ipykernel.kernelspec import write_kernel_spec

    with tempfile.TemporaryDirectory(prefix="sparklstm-kernels-") as kernels:
        write_kernel_spec(
            Path(kernels) / KERNEL_NAME,
            overrides={
                "display_name": "sparklstm notebooks",
                "env": KERNEL_ENV,
                "argv": KERNEL_ARGV,
            },
        )
        for name in args.names or NAMES:
            execute(name, kernels)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
