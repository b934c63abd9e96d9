"""Models and checkpoints on disk: NumPy arrays in ``.npz`` plus a JSON manifest, never pickle.

Loading a file never executes code: arrays are read with ``np.load(..., allow_pickle=False)``,
everything else is JSON, and every array is checked against the dtype, shape and SHA-256 digest
recorded in the manifest.

Two layouts hold the same information:

* a **directory** ``path/`` holding ``manifest.json`` and ``arrays.npz`` (the default);
* a **single file** ``path.npz`` (chosen when the path ends in ``.npz``) whose member
  ``__manifest__`` is the manifest's UTF-8 JSON stored as a ``uint8`` array.

The manifest is ``{"format": "sparklstm", "kind": ..., "format_version": ..., "config": ...,
"arrays": {name: {"dtype": ..., "shape": [...], "sha256": ...}}, "created": ...,
"library_version": ...}``. Digests are taken over the array's C-order, little-endian bytes.

Atomic writes
-------------
A bundle is first written completely into a temporary sibling (``.<name>.tmp-<random>``) and
fsynced, then moved into place with ``os.replace``, so a crash (for example a Spark driver dying
while writing a checkpoint) never leaves a half-written bundle at ``path``.

* A single ``.npz`` file is replaced in one atomic ``os.replace``: ``path`` always holds either
  the old or the new file.
* A directory cannot be atomically replaced by another directory with the standard library, so
  the old bundle is first renamed aside to ``<name>.old-<time_ns>-<random>``, the new one is
  renamed in, and the old one is deleted. Between the two renames (a window of one system call)
  ``path`` does not exist; if the process dies exactly there, the complete old bundle survives
  under its ``.old-*`` name and :func:`load_bundle` / :func:`read_manifest` read it from there
  (with a logged warning) when ``path`` is missing. The next successful save deletes it.

Leftover ``.<name>.tmp-*`` entries from an interrupted write are never read; they are harmless
and may be deleted by hand. Concurrent writers to the same path are not supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import struct
import time
import zipfile
import zlib
from collections.abc import Collection, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "ARRAYS_NAME",
    "FORMAT_NAME",
    "MANIFEST_MEMBER",
    "MANIFEST_NAME",
    "ModelFileError",
    "load_bundle",
    "read_manifest",
    "save_bundle",
]

logger = logging.getLogger(__name__)

FORMAT_NAME = "sparklstm"
MANIFEST_NAME = "manifest.json"
ARRAYS_NAME = "arrays.npz"
MANIFEST_MEMBER = "__manifest__"
SINGLE_FILE_SUFFIX = ".npz"

# dtype kinds that can be saved: bool, signed/unsigned integer, floating, complex.
_SAVABLE_KINDS = frozenset("biufc")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Errors numpy/zipfile raise on truncated, corrupted or pickle-holding archives.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    struct.error,
    zlib.error,
    NotImplementedError,
)


class ModelFileError(ValueError):
    """A model or checkpoint bundle that cannot be loaded.

    Raised for missing files, corruption, pickled content, and bundles of another format, kind
    or format version. The message starts with the offending path.
    """


# ------------------------------------------------------------------------------------ saving
def save_bundle(
    path: str | os.PathLike[str],
    config: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    kind: str,
    format_version: int,
    overwrite: bool = True,
) -> Path:
    """Atomically write ``config`` (as JSON) and ``arrays`` (as ``.npz``) to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Destination. A path ending in ``.npz`` gives a single-file bundle; any other path a
        directory holding ``manifest.json`` and ``arrays.npz``. Missing parent directories are
        created.
    config : Mapping[str, Any]
        JSON-serialisable document (str keys; None, bool, int, finite float, str, lists,
        tuples and mappings; NumPy scalars are converted). Tuples come back as lists.
    arrays : Mapping[str, numpy.ndarray]
        Arrays of bool, integer, floating or complex dtype, all finite. Names may contain
        ``/`` and ``.`` (``"optim/exp_avg/weight_ih_l0"``, ``"head.weight"``) but must be
        non-empty, must not start with ``/``, contain ``\\``, NUL, or empty, ``.`` or ``..``
        path segments, and must not be ``"__manifest__"``.
    kind : str
        What the bundle holds, e.g. ``"model"`` or ``"checkpoint"``; checked on load.
    format_version : int
        Version (>= 1) of the caller's layout of ``config`` and ``arrays``; checked on load.
    overwrite : bool, default True
        Replace an existing bundle at ``path``. Only a previous bundle is ever replaced: a
        directory holding anything but ``manifest.json``/``arrays.npz`` is refused.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        A non-array, an object/structured/string array, or a config value that is not JSON
        (the message names the array or the key path, e.g. ``config['optim']['betas'][1]``).
    ValueError
        Non-finite values in a float array (named), NaN/infinity in the config, a bad name,
        ``kind`` or ``format_version``.
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it is not a bundle that may be replaced.
    """
    target = Path(os.fspath(path))
    if target.name in ("", ".", ".."):
        raise ValueError(f"path must name a file or directory, got {os.fspath(path)!r}")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if not isinstance(format_version, int) or isinstance(format_version, bool):
        raise TypeError(f"format_version must be an int, got {type(format_version).__name__}")
    if format_version < 1:
        raise ValueError(f"format_version must be >= 1, got {format_version}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")

    # Validate everything before touching the disk.
    document = _plain_json(config, "config", set())
    prepared = _prepare_arrays(arrays)
    manifest = {
        "format": FORMAT_NAME,
        "kind": kind,
        "format_version": format_version,
        "config": document,
        "arrays": {
            name: {"dtype": array.dtype.name, "shape": list(array.shape), "sha256": _digest(array)}
            for name, array in prepared.items()
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "library_version": _library_version(),
    }
    manifest_bytes = (
        json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode("utf-8")

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == SINGLE_FILE_SUFFIX:
        _write_single_file(target, manifest_bytes, prepared, overwrite)
    else:
        _write_directory(target, manifest_bytes, prepared, overwrite)
    logger.debug("saved %s bundle %s (%d arrays)", kind, target, len(prepared))
    return target


def _library_version() -> str:
    """``sparklstm.__version__``, or ``"unknown"`` if it cannot be imported."""
    try:
        return str(importlib.import_module("sparklstm").__version__)
    except (ImportError, AttributeError):
        return "unknown"


def _plain_json(value: Any, where: str, active: set[int]) -> Any:
    """A plain-JSON copy of ``value``; TypeError/ValueError naming the key path ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {float(value)!r}; JSON cannot hold NaN or infinity")
        return float(value)
    if isinstance(value, (Mapping, list, tuple)):
        if id(value) in active:
            raise ValueError(f"{where} is a circular reference")
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                result: Any = {}
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise TypeError(
                            f"{where} has key {key!r} of type {type(key).__name__}; "
                            "JSON object keys must be str"
                        )
                    result[key] = _plain_json(item, f"{where}[{key!r}]", active)
            else:
                result = [
                    _plain_json(item, f"{where}[{index}]", active)
                    for index, item in enumerate(value)
                ]
        finally:
            active.discard(id(value))
        return result
    raise TypeError(f"{where} has type {type(value).__name__}, which is not JSON-serialisable")


def _check_array_name(name: Any) -> None:
    """Names become zip member names: refuse the ones that would not round-trip."""
    if not isinstance(name, str):
        raise TypeError(f"array names must be str, got {name!r} of type {type(name).__name__}")
    if name == MANIFEST_MEMBER:
        raise ValueError(f"array name {name!r} is reserved")
    if not name or "\0" in name or "\\" in name or name.startswith("/"):
        raise ValueError(
            f"invalid array name {name!r}: must be non-empty, not start with '/', "
            "and contain no backslash or NUL"
        )
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"invalid array name {name!r}: empty, '.' or '..' path segment")


def _prepare_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check every array and return C-contiguous little-endian versions, in the given order."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a mapping of name -> ndarray, got {type(arrays).__name__}")
    prepared: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        _check_array_name(name)
        if not isinstance(value, np.ndarray):
            raise TypeError(f"array {name!r} is a {type(value).__name__}, not a numpy.ndarray")
        if value.dtype.kind not in _SAVABLE_KINDS:
            raise TypeError(
                f"array {name!r} has dtype {value.dtype}; only bool, integer, float and complex "
                "arrays can be saved (no object, string or structured arrays)"
            )
        if value.dtype.kind in "fc":
            finite = np.isfinite(value)
            if not finite.all():
                bad = int(finite.size - np.count_nonzero(finite))
                raise ValueError(
                    f"array {name!r} holds {bad} non-finite value(s) (NaN or infinity); "
                    "refusing to save it"
                )
        prepared[name] = _canonical(value)
    return prepared


def _canonical(array: np.ndarray) -> np.ndarray:
    """A C-contiguous, little-endian base-class ndarray with the same values."""
    result = np.asarray(array, dtype=array.dtype.newbyteorder("<"))
    if not result.flags.c_contiguous:
        result = result.copy(order="C")
    return result


def _digest(array: np.ndarray) -> str:
    """SHA-256 of the array's C-order little-endian bytes."""
    return hashlib.sha256(_canonical(array).reshape(-1).view(np.uint8)).hexdigest()


def _write_npz(handle: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` (uncompressed zip of ``<name>.npy`` members), then fsync it.

    The zip is written directly rather than through ``np.savez(**arrays)`` so that any name
    (including ``"file"`` or ``"allow_pickle"``) is accepted; the result is a standard npz.
    """
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    handle.flush()
    os.fsync(handle.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make renames/creations in ``directory`` durable (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temporary_sibling(target: Path) -> Path:
    return target.parent / f".{target.name}.tmp-{secrets.token_hex(8)}"


def _write_single_file(
    target: Path, manifest_bytes: bytes, arrays: Mapping[str, np.ndarray], overwrite: bool
) -> None:
    if os.path.lexists(target):
        if not overwrite:
            raise FileExistsError(f"{target} already exists (overwrite=False)")
        if target.is_symlink() or not target.is_file():
            raise FileExistsError(f"{target} exists and is not a regular file; refusing to replace")
    members = {MANIFEST_MEMBER: np.frombuffer(manifest_bytes, dtype=np.uint8), **arrays}
    temporary = _temporary_sibling(target)
    try:
        with open(temporary, "xb") as handle:
            _write_npz(handle, members)
        # One atomic rename: readers see either the old file or the new one.
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_dir(target.parent)


def _write_directory(
    target: Path, manifest_bytes: bytes, arrays: Mapping[str, np.ndarray], overwrite: bool
) -> None:
    if os.path.lexists(target):
        if not overwrite:
            raise FileExistsError(f"{target} already exists (overwrite=False)")
        _check_replaceable(target)
    elif not overwrite and _newest_old(target) is not None:
        # A crash mid-replace left the previous bundle aside; it is still "the" bundle.
        raise FileExistsError(f"{target} already exists (as an interrupted replace; see .old-*)")
    temporary = _temporary_sibling(target)
    temporary.mkdir()
    try:
        with open(temporary / ARRAYS_NAME, "xb") as handle:
            _write_npz(handle, arrays)
        with open(temporary / MANIFEST_NAME, "xb") as handle:
            handle.write(manifest_bytes)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(temporary)
        _swap_in(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _remove_stale_old(target)


def _check_replaceable(target: Path) -> None:
    """Only a previous bundle may be replaced: never delete a user's unrelated directory."""
    if target.is_symlink() or not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a bundle directory; refusing to replace")
    others = sorted(set(os.listdir(target)) - {MANIFEST_NAME, ARRAYS_NAME})
    if others:
        raise FileExistsError(
            f"{target} holds files that are not part of a bundle ({_names(others)}); "
            "refusing to replace it"
        )


def _swap_in(temporary: Path, target: Path) -> None:
    """Move the complete, fsynced bundle ``temporary`` to ``target``.

    Crash analysis (the process may die between any two steps):

    1. before the first rename: ``target`` is the untouched old bundle (or absent);
    2. after renaming the old bundle aside, before renaming the new one in: ``target`` is
       missing and the complete old bundle is ``<name>.old-*``; readers fall back to it
       (``_locate``) and the next save removes it;
    3. after the second rename: ``target`` is the complete new bundle; a leftover ``.old-*``
       is ignored by readers (``target`` exists) and removed by the next save.

    An exception (rather than a crash) in the second rename moves the old bundle back.
    """
    aside = None
    if os.path.lexists(target):
        aside = target.parent / f"{target.name}.old-{time.time_ns()}-{secrets.token_hex(4)}"
        os.replace(target, aside)
        _fsync_dir(target.parent)
    try:
        os.replace(temporary, target)
    except BaseException:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.replace(aside, target)
        raise
    _fsync_dir(target.parent)


def _old_siblings(target: Path) -> list[tuple[int, Path]]:
    """``(time_ns, path)`` of every ``<name>.old-<time_ns>-<hex>`` sibling of ``target``."""
    pattern = re.compile(re.escape(target.name) + r"\.old-(\d+)-[0-9a-f]+")
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return []
    found = []
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match:
            found.append((int(match.group(1)), target.parent / entry))
    return sorted(found)


def _newest_old(target: Path) -> Path | None:
    siblings = [path for _, path in _old_siblings(target) if path.is_dir()]
    return siblings[-1] if siblings else None


def _remove_stale_old(target: Path) -> None:
    """Once ``target`` holds a complete bundle, every ``.old-*`` sibling is obsolete."""
    for _, old in _old_siblings(target):
        logger.debug("removing replaced bundle %s", old)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


# ----------------------------------------------------------------------------------- loading
def load_bundle(
    path: str | os.PathLike[str], *, kind: str, supported_versions: Collection[int]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a bundle written by :func:`save_bundle`; never unpickles.

    Parameters
    ----------
    path : str or os.PathLike
        A bundle directory or a single-file ``.npz`` bundle (told apart by what is on disk).
    kind : str
        The expected kind, e.g. ``"model"``.
    supported_versions : Collection[int]
        The format versions the caller can interpret.

    Returns
    -------
    config : dict
        The ``config`` document given to :func:`save_bundle` (tuples read back as lists).
    arrays : dict[str, numpy.ndarray]
        Every array, in the saved order, each verified against the manifest's dtype, shape
        and SHA-256 digest.

    Raises
    ------
    ModelFileError
        Missing path or member, invalid JSON, another format or kind, an unsupported format
        version, missing or extra arrays, dtype/shape/digest mismatch, a truncated or
        corrupted archive, or pickled content. The original error is chained as the cause.
    """
    versions = {int(version) for version in supported_versions}
    if not versions:
        raise ValueError("supported_versions must not be empty")
    with _opened(Path(os.fspath(path)), need_arrays=True) as (location, manifest, npz):
        _check_header(manifest, location, kind, versions)
        table = _array_table(manifest, location)
        if npz is None:  # cannot happen with need_arrays=True
            raise ModelFileError(f"{location}: no arrays archive")
        arrays = _read_arrays(npz, table, location)
    return manifest["config"], arrays


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a bundle, without reading its arrays.

    Parameters
    ----------
    path : str or os.PathLike
        A bundle directory or a single-file ``.npz`` bundle.

    Returns
    -------
    dict
        The whole manifest: ``format``, ``kind``, ``format_version``, ``config``, ``arrays``
        (name -> dtype, shape, sha256), ``created`` and ``library_version``. Only the format
        name is checked; kind and version are left to the caller.

    Raises
    ------
    ModelFileError
        Missing path or manifest, invalid JSON, or not a sparklstm bundle.
    """
    with _opened(Path(os.fspath(path)), need_arrays=False) as (_, manifest, _npz):
        return manifest


def _locate(path: Path) -> Path:
    """``path``, or the old bundle a crash between the two renames of a replace left aside."""
    if os.path.lexists(path):
        return path
    old = _newest_old(path)
    if old is None:
        raise ModelFileError(f"{path}: no such file or directory")
    logger.warning(
        "%s is missing but %s exists (a save was interrupted while replacing the bundle); "
        "reading the previous bundle from there",
        path,
        old,
    )
    return old


@contextlib.contextmanager
def _opened(
    path: Path, *, need_arrays: bool
) -> Iterator[tuple[Path, dict[str, Any], np.lib.npyio.NpzFile | None]]:
    """Yield ``(location, manifest, npz)``; ``npz`` is None for a directory without arrays.

    For a directory, ``arrays.npz`` is opened before ``manifest.json`` is read, so a reader
    racing a writer holds both files of one bundle except in a window of one ``open`` call;
    a mix-up there is caught by the digests, never returned silently.
    """
    location = _locate(path)
    with contextlib.ExitStack() as stack:
        npz = None
        if location.is_dir():
            wanted = [MANIFEST_NAME, ARRAYS_NAME] if need_arrays else [MANIFEST_NAME]
            missing = [name for name in wanted if not (location / name).is_file()]
            if missing:
                raise ModelFileError(
                    f"{location}: not a complete sparklstm bundle (missing {', '.join(missing)})"
                )
            if need_arrays:
                npz = _open_npz(location / ARRAYS_NAME, location, stack)
            try:
                raw = (location / MANIFEST_NAME).read_bytes()
            except OSError as exc:
                raise ModelFileError(f"{location}: cannot read {MANIFEST_NAME} ({exc})") from exc
        elif location.is_file():
            npz = _open_npz(location, location, stack)
            if MANIFEST_MEMBER not in npz.files:
                raise ModelFileError(
                    f"{location}: not a sparklstm bundle (no {MANIFEST_MEMBER!r} member)"
                )
            member = _read_member(npz, MANIFEST_MEMBER, location)
            if member.dtype != np.uint8 or member.ndim != 1:
                raise ModelFileError(
                    f"{location}: {MANIFEST_MEMBER!r} is {member.dtype} {member.shape}, "
                    "expected 1-D uint8"
                )
            raw = member.tobytes()
        else:
            raise ModelFileError(f"{location}: neither a bundle directory nor an .npz file")
        yield location, _parse_manifest(raw, location), npz


def _open_npz(file: Path, location: Path, stack: contextlib.ExitStack) -> np.lib.npyio.NpzFile:
    what = "the file" if file == location else file.name
    try:
        handle = stack.enter_context(open(file, "rb"))
        loaded = np.load(handle, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise ModelFileError(
            f"{location}: {what} is not a readable .npz archive ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{location}: {what} holds a single .npy array, not an .npz archive")
    stack.enter_context(loaded)
    return loaded


def _read_member(npz: np.lib.npyio.NpzFile, name: str, location: Path) -> np.ndarray:
    try:
        return npz[name]
    except _READ_ERRORS as exc:
        raise ModelFileError(
            f"{location}: array {name!r} is unreadable (truncated, corrupted or pickled data; "
            f"{type(exc).__name__}: {exc})"
        ) from exc


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not valid JSON")


def _parse_manifest(raw: bytes, location: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ModelFileError(f"{location}: the manifest is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{location}: the manifest is not a JSON object")
    found = manifest.get("format")
    if found != FORMAT_NAME:
        raise ModelFileError(
            f"{location}: not a {FORMAT_NAME} bundle (manifest format is {found!r}, "
            f"expected {FORMAT_NAME!r})"
        )
    return manifest


def _check_header(manifest: dict[str, Any], location: Path, kind: str, versions: set[int]) -> None:
    found_kind = manifest.get("kind")
    if found_kind != kind:
        raise ModelFileError(f"{location}: expected a {kind!r} bundle, found {found_kind!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFileError(f"{location}: format_version {version!r} is not an integer")
    if version not in versions:
        supported = ", ".join(str(v) for v in sorted(versions))
        if version > max(versions):
            detail = "the file is newer than this library; upgrade sparklstm to read it"
        elif version < min(versions):
            detail = "the file is older than any version this library can read"
        else:
            detail = "this library cannot read that version"
        raise ModelFileError(
            f"{location}: {kind} format version {version} is not supported "
            f"(supported: {supported}); {detail}"
        )
    if not isinstance(manifest.get("config"), dict):
        raise ModelFileError(f"{location}: the manifest's 'config' is not a JSON object")


def _array_table(
    manifest: dict[str, Any], location: Path
) -> dict[str, tuple[np.dtype, tuple[int, ...], str]]:
    """The manifest's ``arrays`` entry, validated: name -> (dtype, shape, sha256)."""
    entries = manifest.get("arrays")
    if not isinstance(entries, dict):
        raise ModelFileError(f"{location}: the manifest's 'arrays' is not a JSON object")
    table: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ModelFileError(f"{location}: manifest entry for array {name!r} is not an object")
        dtype_name, shape, digest = entry.get("dtype"), entry.get("shape"), entry.get("sha256")
        dtype = None
        if isinstance(dtype_name, str):
            with contextlib.suppress(TypeError, ValueError):
                dtype = np.dtype(dtype_name)
        if dtype is None or dtype.kind not in _SAVABLE_KINDS:
            raise ModelFileError(f"{location}: array {name!r} has bad dtype {dtype_name!r}")
        if not isinstance(shape, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise ModelFileError(f"{location}: array {name!r} has bad shape {shape!r}")
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise ModelFileError(f"{location}: array {name!r} has bad sha256 {digest!r}")
        table[name] = (dtype, tuple(shape), digest)
    return table


def _read_arrays(
    npz: np.lib.npyio.NpzFile,
    table: dict[str, tuple[np.dtype, tuple[int, ...], str]],
    location: Path,
) -> dict[str, np.ndarray]:
    present = set(npz.files) - {MANIFEST_MEMBER} if location.is_file() else set(npz.files)
    missing = [name for name in table if name not in present]
    if missing:
        raise ModelFileError(
            f"{location}: array(s) listed in the manifest are missing from the archive: "
            f"{_names(missing)}"
        )
    extra = sorted(present - set(table))
    if extra:
        raise ModelFileError(
            f"{location}: the archive holds array(s) not listed in the manifest: {_names(extra)}"
        )
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, shape, digest) in table.items():
        array = _read_member(npz, name, location)
        if array.dtype.name != dtype.name or array.shape != shape:
            raise ModelFileError(
                f"{location}: array {name!r} is {array.dtype.name} with shape {array.shape}, "
                f"but the manifest says {dtype.name} with shape {shape}"
            )
        if _digest(array) != digest:
            raise ModelFileError(f"{location}: array {name!r} is corrupted (sha256 mismatch)")
        arrays[name] = array
    return arrays
