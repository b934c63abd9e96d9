"""What the spark-submit jobs in ``jobs/`` share: config files, option merging, one-line errors.

The jobs themselves are thin (argparse -> library calls -> files). They are run as scripts by
``spark-submit jobs/NAME.py``, where only the installed (or ``--py-files``-shipped) ``sparklstm``
package is importable, so their shared code lives here rather than in ``jobs/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "DATA_READ_KEYS",
    "JobArgumentParser",
    "add_data_options",
    "add_option_flags",
    "flag_default",
    "add_session_options",
    "add_stream_options",
    "add_target_options",
    "STREAM_KEYS",
    "stream_columns",
    "check_input_path",
    "check_target_columns",
    "data_and_model",
    "invoked_name",
    "load_trained_model",
    "model_job_parser",
    "read_data",
    "read_document",
    "stop_spark_quietly",
    "load_config_file",
    "merge_sections",
    "run_job",
    "write_json",
]

logger = logging.getLogger(__name__)

CONFIG_SECTIONS = ("data", "model", "training", "output")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstring's layout; metavars without the ``section.`` prefix of the dest."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return action.dest.rpartition(".")[2].upper()


class JobArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2) and which
    takes options only by their full names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        # An abbreviation (--epoch for --epochs) would silently become another option one day.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def read_document(path: Path, flag: str = "") -> Any:
    """A JSON (or, with PyYAML installed, YAML) file's content. YAML is read with
    ``yaml.safe_load`` (no object construction): nothing in the file is ever executed. Errors
    are one line naming ``flag`` (e.g. ``--config``) and the path."""
    where = f"{flag} {path}" if flag else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag or 'config'}: no such file: {path}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"{where}: YAML needs PyYAML (pip install 'sparklstm[yaml]'); "
                "or write the config as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{where}: not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON: {exc}") from None


def load_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a job config: a JSON (or, with PyYAML installed, YAML) object whose keys are some of
    ``data``, ``model``, ``training`` and ``output``, each an object of options named as the
    library names them (snake_case: ``hidden_sizes``, ``local_steps``, ...).

    YAML is read with ``yaml.safe_load`` (no object construction); nothing in a config file is
    ever executed.
    """
    path = Path(path)
    document = read_document(path, "--config")
    if not isinstance(document, dict):
        raise ValueError(f"--config {path}: expected an object with sections {CONFIG_SECTIONS}")
    unknown = sorted(set(document) - set(CONFIG_SECTIONS))
    if unknown:
        raise ValueError(
            f"--config {path}: unknown section(s) {unknown}; sections are {list(CONFIG_SECTIONS)}"
        )
    for name, section in document.items():
        if not isinstance(section, dict):
            raise ValueError(f"--config {path}: section {name!r} must be an object")
    return {name: dict(document.get(name, {})) for name in CONFIG_SECTIONS}


def merge_sections(
    config: Mapping[str, Mapping[str, Any]], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """The config file's sections, overridden by the options given on the command line.

    Command-line options are declared with ``dest="SECTION.key"`` and
    ``default=argparse.SUPPRESS``, so only the options actually given appear in ``args``.
    """
    merged = {name: dict(config.get(name, {})) for name in CONFIG_SECTIONS}
    for dest, value in vars(args).items():
        section, dot, key = dest.partition(".")
        if dot and section in merged:
            merged[section][key] = value
    return merged


# Options of sparklstm.spark.sources.read_sequences that the jobs expose (section "data").
DATA_READ_KEYS = frozenset(
    {
        "format",
        "features_col",
        "label_col",
        "length_col",
        "sequence_type",
        "label_type",
        "dictionary",
    }
)


def add_session_options(parser: argparse.ArgumentParser) -> None:
    """``--master`` and ``--remote`` (exclusive; dests ``master`` and ``remote``, ``None``
    unless given): where the job's Spark runs, for ``get_session(master=..., remote=...)``.
    Both given is a one-line usage error."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    group.add_argument(
        "--remote",
        metavar="sc://HOST:PORT",
        help="Spark Connect server instead of a master (default: $SPARK_REMOTE if set)",
    )


def add_data_options(parser: argparse.ArgumentParser, path_help: str) -> Any:
    """The ``data`` option group shared by the jobs (dests ``data.KEY``, absent unless given)."""
    from sparklstm.spark.sources import FORMATS, LABEL_TYPES, SEQUENCE_TYPES

    unset = argparse.SUPPRESS
    group = parser.add_argument_group("data")
    group.add_argument("--data", dest="data.path", metavar="PATH", default=unset, help=path_help)
    group.add_argument(
        "--format",
        dest="data.format",
        choices=FORMATS,
        default=unset,
        help="parquet (default), csv, json, or text (label<TAB>tok1,tok2,... + --dictionary)",
    )
    for flag, default, text in (
        ("features", "features", "sequence column"),
        ("label", "label", "label column"),
        ("length", None, "integer column of valid lengths (optional)"),
    ):
        group.add_argument(
            f"--{flag}-col",
            dest=f"data.{flag}_col",
            metavar="NAME",
            default=unset,
            help=text + (f" (default: {default})" if default else ""),
        )
    group.add_argument(
        "--sequence-type",
        dest="data.sequence_type",
        choices=SEQUENCE_TYPES,
        default=unset,
        help="how csv/json sequence text is parsed (default: multivariate)",
    )
    group.add_argument(
        "--label-type",
        dest="data.label_type",
        choices=LABEL_TYPES,
        default=unset,
        help="how csv/json label text is parsed",
    )
    group.add_argument(
        "--dictionary",
        dest="data.dictionary",
        metavar="PATH",
        default=unset,
        help="word<TAB>v1,v2,... vectors for --format text",
    )
    return group


# The seq2seq target's columns (section "data"): --target-col names the label column of a
# seq2seq model (the target sequence), --target-length-col its optional length column.
TARGET_KEYS = frozenset({"target_col", "target_length_col"})


# The columns of a table of steps (section "data"): --stream-col switches a job to long
# streams (one row per step of a stream; sparklstm.spark.streams), --position-col orders them.
STREAM_KEYS = frozenset({"stream_col", "position_col"})


def add_stream_options(group: Any) -> None:
    """``--stream-col`` and ``--position-col`` (dests ``data.stream_col`` and
    ``data.position_col``, absent unless given): the stream id and position columns of a
    table of steps, read as long streams with carried state."""
    unset = argparse.SUPPRESS
    group.add_argument(
        "--stream-col",
        dest="data.stream_col",
        metavar="NAME",
        default=unset,
        help="long streams: the stream id column of a table of steps (one row per step, "
        "--features-col a number, array or token id and --label-col its target), read stream "
        "by stream with the state carried from chunk to chunk",
    )
    group.add_argument(
        "--position-col",
        dest="data.position_col",
        metavar="NAME",
        default=unset,
        help="long streams: the integer position column (consecutive within each stream; "
        "default: position)",
    )


def stream_columns(data: Mapping[str, Any]) -> Any:
    """The :class:`~sparklstm.spark.streams.StreamColumns` of the ``data`` section, or None
    when it names no stream column (not a table of steps). A position column without a
    stream column is an error."""
    if not data.get("stream_col"):
        if data.get("position_col"):
            raise ValueError(
                "--position-col applies to long streams; give --stream-col too (the stream id "
                "column), or leave it out"
            )
        return None
    from sparklstm.spark.streams import StreamColumns

    return StreamColumns(
        stream=data["stream_col"],
        position=data.get("position_col") or StreamColumns.position,
        features=data.get("features_col") or StreamColumns.features,
        label=data.get("label_col") or StreamColumns.label,
    )


def add_target_options(group: Any) -> None:
    """``--target-col`` and ``--target-length-col`` (dests ``data.target_col`` and
    ``data.target_length_col``, absent unless given): a seq2seq model's target sequence
    column (another name for ``--label-col``) and its optional integer length column."""
    unset = argparse.SUPPRESS
    group.add_argument(
        "--target-col",
        dest="data.target_col",
        metavar="NAME",
        default=unset,
        help="seq2seq models: the target sequence column (instead of --label-col)",
    )
    group.add_argument(
        "--target-length-col",
        dest="data.target_length_col",
        metavar="NAME",
        default=unset,
        help="seq2seq models: integer column of the targets' valid lengths (optional)",
    )


def check_target_columns(data: dict[str, Any], seq2seq: bool, what: str) -> None:
    """The ``data`` section's seq2seq target columns made plain: ``target_col`` becomes
    ``label_col`` (giving both is an error), and either given for a model that is not
    seq2seq (``what`` says how it was chosen, e.g. ``--head last``) is an error naming the
    flag."""
    given = sorted(key for key in TARGET_KEYS if data.get(key) is not None)
    if given and not seq2seq:
        flag = "--" + given[0].replace("_", "-")
        raise ValueError(
            f"{flag} is for seq2seq models (target sequences), not {what}; leave it out, or "
            "train with --head seq2seq"
        )
    target = data.pop("target_col", None)
    if target is not None:
        if data.get("label_col") is not None and data["label_col"] != target:
            raise ValueError(
                f"--target-col {target} and --label-col {data['label_col']} both name the "
                "target sequence column; give one of them"
            )
        data["label_col"] = target


def flag_default(option: Any) -> Any:
    """An option's default on the command line (the library's, unless the option declares
    the jobs' own, e.g. a fixed seed)."""
    return option.view_defaults.get("flag", option.default)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def add_option_flags(group: Any, options: Sequence[Any], section: str) -> None:
    """One flag per option (see :mod:`sparklstm.options`): ``--local-steps`` for
    ``local_steps`` (or the option's own flag), typed and with its choices and its default in
    the help; dests ``SECTION.name``, absent unless given (so a ``--config`` file's value
    stands). True/False options take ``--x`` / ``--no-x``; dict options take JSON."""
    for option in options:
        if not option.flag_name:
            continue
        kwargs: dict[str, Any] = {"dest": f"{section}.{option.name}", "default": argparse.SUPPRESS}
        if option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.kind in ("int", "float"):
            kwargs["type"] = int if option.kind == "int" else float
        elif option.kind == "choice":
            kwargs["choices"] = option.choices
        elif option.kind in ("ints", "floats"):
            kwargs.update(type=int if option.kind == "ints" else float, nargs="+")
        elif option.kind == "mapping":
            kwargs.update(type=_json_object, metavar="JSON")
        default = flag_default(option)
        shown = json.dumps(default) if isinstance(default, dict) else default
        if isinstance(shown, (list, tuple)):
            shown = " ".join(map(str, shown))
        kwargs["help"] = f"{option.help} (default: {shown})".replace("%", "%%")
        group.add_argument(option.flag_name, **kwargs)


def model_job_parser(
    prog: str, doc: str, data_help: str, targets: bool = False, streams: bool = False
) -> JobArgumentParser:
    """The parser of a job that applies a trained model (predict, evaluate): the job's
    docstring as description and epilog, ``--model``, ``--config``, the session options and
    the ``data`` group (with ``targets``, the seq2seq target columns too; with ``streams``,
    the columns of a table of steps); the job adds its own output options."""
    parser = JobArgumentParser(
        prog=prog, description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 2)[2]
    )
    parser.add_argument("--model", required=True, help="model directory (from jobs/train.py)")
    parser.add_argument("--config", help="JSON/YAML file whose 'data' section gives read options")
    add_session_options(parser)
    data = add_data_options(parser, data_help)
    if targets:
        add_target_options(data)
    if streams:
        add_stream_options(data)
    return parser


def data_and_model(
    args: argparse.Namespace, trained_keys: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], Any]:
    """For the jobs that use a trained model: the option sections (the ``--config`` file's,
    overridden by the flags; ``--data`` required and checked) and the model of ``--model``,
    whose recorded training columns (``jobs/train.py`` writes them into the model file) are the
    defaults of the ``data`` options ``trained_keys``. The seq2seq target columns are made
    plain first (:func:`check_target_columns`: ``target_col`` becomes ``label_col``)."""
    options = merge_sections(load_config_file(args.config) if args.config else {}, args)
    data = options["data"]
    if not data.get("path"):
        raise ValueError("--data is required (or data.path in --config)")
    check_input_path("--data", data["path"])
    model = load_trained_model(args.model)
    head = model.config.head
    check_target_columns(data, head == "seq2seq", f"the --model {args.model} (head {head!r})")
    trained = model.metadata.get("columns", {})
    for key in trained_keys:
        if key not in data and trained.get(key):
            data[key] = trained[key]
    return options, model


def load_trained_model(path: str) -> Any:
    """The model in ``path`` (a model directory or ``.npz`` written by ``jobs/train.py``), of
    the class its file records: a :class:`~sparklstm.model.seq2seq.Seq2SeqModel` for a
    seq2seq bundle, else a :class:`~sparklstm.model.SequenceModel`."""
    from sparklstm.io.model_files import read_manifest
    from sparklstm.model import SequenceModel
    from sparklstm.model.seq2seq import SEQ2SEQ_KIND, Seq2SeqModel

    kind = read_manifest(path).get("kind")
    return (Seq2SeqModel if kind == SEQ2SEQ_KIND else SequenceModel).load(path)


def check_input_path(flag: str, path: str) -> None:
    """A local input path (no URI scheme, or ``file:``) that does not exist is an error before
    Spark starts; remote URIs (hdfs://, s3a://, ...) and glob patterns are left to Spark."""
    text = str(path)
    if any(c in text for c in "*?[{"):
        return
    if text.startswith("file:"):
        text = text[len("file:") :].lstrip("/")
        text = "/" + text
    elif "://" in text:
        return
    if not Path(text).exists():
        raise FileNotFoundError(f"{flag}: no such file or directory: {path}")


def read_data(
    spark: Any,
    data: Mapping[str, Any],
    path: str,
    labelled: bool = True,
    flag: str | None = None,
) -> Any:
    """``read_sequences`` with the ``data`` section's reader options.

    ``flag`` is the option ``path`` came from, named in one-line errors (``--data X: not
    Parquet ...; pass --format csv``); by default ``--validation`` for the section's
    ``validation`` path and ``--data`` otherwise.
    """
    from sparklstm.spark.sources import read_sequences

    options = {k: v for k, v in data.items() if k in DATA_READ_KEYS}
    if not labelled:
        options["label_col"] = None
    if flag is None:
        same_as_data = path == data.get("path")
        flag = "--validation" if path == data.get("validation") and not same_as_data else "--data"
    return read_sequences(spark, path, flag=flag, **options)


def write_json(path: str | Path, document: Any) -> Path:
    """Write ``document`` as indented JSON, atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ValueError, TypeError, FileNotFoundError, KeyError]
    try:
        from pyspark.errors import AnalysisException

        errors.append(AnalysisException)
    except ImportError:  # pragma: no cover - pyspark is a dependency
        pass
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    return " ".join(text.splitlines()[:1]) if type(exc).__name__ == "AnalysisException" else text


# A Spark failure that ran out of memory says one of these; the first that applies names what
# to change (a spilled sort keeps a 1 MiB buffer per spill file until its task ends, so a
# partition of many GB runs out of heap however the rest is tuned).
_OUT_OF_MEMORY = ("Cannot reserve additional contiguous bytes", "OutOfMemoryError", "MemoryError")
_REMEDIES = (
    ("in the vectorized reader", "lower spark.sql.parquet.columnarReaderBatchSize, or raise "),
    (
        "UnsafeSorterSpillReader",
        "spread the rows over more partitions (--partitions; a sort that spilled holds 1 MiB "
        "per spill file), or raise ",
    ),
    ("exceeding memory limits", "raise spark.executor.memoryOverhead"),
    ("OutOfMemoryError", "raise "),
    ("MemoryError", "give the Python workers more memory (spark.executor.pyspark.memory)"),
)


def out_of_memory(exc: BaseException) -> str | None:
    """One line for a Spark failure that ran out of memory (the JVM's heap in a task, the
    Parquet reader's column batch, a sort's spill files, a container's limit, a Python worker),
    naming the setting to change; None for any other exception."""
    import re

    if not type(exc).__module__.startswith(("py4j", "pyspark")):
        return None
    text = str(exc)
    kind = next((k for k in _OUT_OF_MEMORY if k in text), None)
    if kind is None and "exceeding memory limits" not in text:
        return None
    remedy = next((r for marker, r in _REMEDIES if marker in text), "raise ")
    kind = kind or "exceeding memory limits"
    line = next(t for t in text.splitlines() if kind in t)
    start = line.find("java.lang.OutOfMemoryError")
    what = line[start if start >= 0 else line.index(kind) :].split(". ")[0].strip(" :;,.")
    stage = re.search(r"in stage (\d+(?:\.\d+)?)", text)
    memory = "--driver-memory (local mode: the tasks run in the driver) or spark.executor.memory"
    try:
        from pyspark import SparkContext

        context = SparkContext._active_spark_context
        if context is not None:
            local = context.master.startswith("local")
            key = "spark.driver.memory" if local else "spark.executor.memory"
            now = context.getConf().get(key, "1g")
            memory = (
                f"--driver-memory (now {now}; local mode: the tasks run in the driver)"
                if local
                else f"spark.executor.memory (now {now})"
            )
    except Exception:  # no context, or its JVM is gone: both settings are named
        pass
    where = f" in stage {stage.group(1)}" if stage else ""
    if remedy.endswith("raise "):
        remedy += memory
    return f"Spark ran out of memory{where} ({what}); {remedy}"


def invoked_name(command: str) -> str:
    """The name a job was started by, for its usage and error lines: the script's file name
    under ``spark-submit jobs/train.py`` or ``python -m ...`` (``train.py``), else the
    installed command's (``sparklstm-train``)."""
    started_as = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return started_as if started_as.endswith(".py") else command


def run_job(main: Callable[[Sequence[str] | None], int], prog: str) -> NoReturn:
    """Run ``main(sys.argv[1:])`` and exit with its status; a user mistake (bad option, missing
    column or file, invalid data) or a Spark job that ran out of memory (naming the setting to
    raise, see :func:`out_of_memory`) ends the job with one ``PROG: error: ...`` line on stderr
    and status 1 instead of a traceback. ``SPARKLSTM_DEBUG=1`` shows the traceback. Output cut
    short by its reader (``| head``) ends the job quietly with status 141."""
    import os

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started_before = _active_spark_context() is not None
    try:
        status = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output went away (``| head``): stop quietly, as a pipeline's writer
        # does, with the shell's status for it (128 + SIGPIPE); nothing more goes to stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 141
    except _user_errors() as exc:
        if os.environ.get("SPARKLSTM_DEBUG"):
            raise
        sys.stderr.write(f"{prog}: error: {_one_line(exc)}\n")
        status = 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        status = 130
    except Exception as exc:
        line = out_of_memory(exc)
        if line is None or os.environ.get("SPARKLSTM_DEBUG"):
            raise
        sys.stderr.write(f"{prog}: error: {line}\n")
        status = 1
    if not started_before:  # a session the job started (not a notebook's or a test's)
        stop_spark_quietly()
    sys.exit(status)


def _active_spark_context() -> Any:
    """This process's running classic SparkContext, or None (pyspark not even imported)."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import SparkContext

    return SparkContext._active_spark_context


def stop_spark_quietly() -> None:
    """Stop this process's classic SparkContext, if one runs, with Spark's log turned off.

    Once a job has said what it has to say, what Spark logs while it shuts down is noise: the
    executors are told to exit and their connections close, which Spark reports as warnings
    and errors with stack traces (in ``local-cluster`` mode, where the master and workers live
    in the driver's JVM, hundreds of lines after a successful run). Stopping the context here,
    silenced, leaves nothing for the JVM's shutdown hook to report. A Spark Connect session
    has nothing of the kind in this process."""
    context = _active_spark_context()
    if context is None:
        return
    context.setLogLevel("OFF")
    context.stop()
