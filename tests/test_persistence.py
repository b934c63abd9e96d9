"""Bundles on disk (``sparklstm.io.model_files``): round trips, atomic replacement, and refusal of
every kind of damaged, foreign or pickled file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import sparklstm
from sparklstm.io import model_files as persistence
from sparklstm.io.model_files import (
    FORMAT_NAME,
    ModelFileError,
    load_bundle,
    read_manifest,
    save_bundle,
)

VARIANTS = ["bundle", "bundle.npz"]


def sample_arrays() -> dict[str, np.ndarray]:
    return {
        "optim/exp_avg/weight_ih_l0": np.linspace(0.125, 2.875, 12, dtype=np.float32).reshape(3, 4),
        "head.weight": np.array([[1.5, -2.25], [3.0, 4.75]], dtype=np.float64),
        "head.bias": np.array(-0.5, dtype=np.float64),  # 0-d
        "step": np.array(7, dtype=np.int64),  # 0-d
        "lengths": np.array([5, 3, 9], dtype=np.int64),
        "mask": np.array([[True, False, True]]),
    }


def sample_config() -> dict:
    return {
        "model": {"cell": "lstm", "hidden_sizes": [8, 4], "dropout": 0.25, "head": None},
        "optim": {"name": "adam", "betas": (0.9, 0.999), "flags": {"amsgrad": False}},
        "round": 12,
        "note": "ünïcode",
    }


def save(path: Path, config: dict | None = None, arrays: dict | None = None, **kwargs) -> Path:
    kwargs.setdefault("kind", "model")
    kwargs.setdefault("format_version", 1)
    return save_bundle(
        path,
        sample_config() if config is None else config,
        sample_arrays() if arrays is None else arrays,
        **kwargs,
    )


def load(path: Path, kind: str = "model", versions=(1,)):
    return load_bundle(path, kind=kind, supported_versions=versions)


def npz_file(path: Path) -> Path:
    return path / "arrays.npz" if path.is_dir() else path


def read_members(file: Path) -> dict[str, np.ndarray]:
    with np.load(file, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def write_members(file: Path, members: dict[str, np.ndarray]) -> None:
    with open(file, "wb") as handle:
        np.savez(handle, **members)


def edit_arrays(path: Path, edit) -> None:
    """Rewrite the bundle's npz (keeping any ``__manifest__``) after ``edit(members)``."""
    members = read_members(npz_file(path))
    edit(members)
    write_members(npz_file(path), members)


def edit_manifest(path: Path, edit) -> None:
    """Rewrite the bundle's manifest after ``edit(manifest_dict)``, leaving the arrays alone."""
    if path.is_dir():
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        edit(manifest)
        (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    else:
        members = read_members(path)
        manifest = json.loads(members["__manifest__"].tobytes().decode("utf-8"))
        edit(manifest)
        members["__manifest__"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        write_members(path, members)


def write_raw_manifest(path: Path, raw: bytes) -> None:
    if path.is_dir():
        (path / "manifest.json").write_bytes(raw)
    else:
        members = read_members(path)
        members["__manifest__"] = np.frombuffer(raw, dtype=np.uint8)
        write_members(path, members)


class MakesMarker:
    """Unpickling this object creates the directory ``marker`` (i.e. runs code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(params=VARIANTS)
def target(request, tmp_path: Path) -> Path:
    return tmp_path / request.param


# ------------------------------------------------------------------------------ round trips
def test_round_trip_values_dtypes_shapes_and_config(target: Path) -> None:
    returned = save(target)
    assert returned == target
    assert target.is_dir() == (target.suffix != ".npz")

    config, arrays = load(target)

    expected_config = sample_config()
    expected_config["optim"]["betas"] = [0.9, 0.999]  # tuples come back as lists
    assert config == expected_config
    expected = sample_arrays()
    assert list(arrays) == list(expected)  # order kept
    for name, array in expected.items():
        assert arrays[name].dtype == array.dtype, name
        assert arrays[name].shape == array.shape, name
        np.testing.assert_array_equal(arrays[name], array)
    assert arrays["head.bias"].shape == () and float(arrays["head.bias"]) == -0.5
    assert arrays["step"].shape == () and int(arrays["step"]) == 7
    assert arrays["optim/exp_avg/weight_ih_l0"][2, 3] == np.float32(2.875)
    assert arrays["mask"].tolist() == [[True, False, True]]


def test_round_trip_non_contiguous_big_endian_and_empty(target: Path) -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    arrays = {
        "transposed": base.T,  # Fortran-ordered view
        "strided": base[:, ::2],
        "big_endian": np.array([1.0, -2.5, 1e300], dtype=">f8"),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "uint8": np.array([0, 255], dtype=np.uint8),
        "complex": np.array([1 + 2j], dtype=np.complex128),
    }
    save(target, arrays=arrays)
    _, loaded = load(target)
    for name, array in arrays.items():
        assert loaded[name].dtype.name == array.dtype.name, name
        assert loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)
    assert loaded["transposed"][3, 2] == 11.0
    assert loaded["big_endian"][2] == 1e300


def test_names_with_slash_and_dot_are_npz_member_names(target: Path) -> None:
    arrays = {
        "optim/exp_avg/weight_ih_l0": np.ones(2, dtype=np.float32),
        "head.weight": np.full(3, 2.0),
        "a.b/c.d/e": np.array(4, dtype=np.int64),
        "file": np.array([1.0]),  # would collide with np.savez's own parameter name
        "allow_pickle": np.array([2.0]),
        "x.npy": np.array([3.0]),
    }
    save(target, arrays=arrays)
    with zipfile.ZipFile(npz_file(target)) as archive:
        members = set(archive.namelist()) - {"__manifest__.npy"}
    assert members == {name + ".npy" for name in arrays}
    plain = read_members(npz_file(target))  # readable by plain numpy too
    plain.pop("__manifest__", None)
    assert set(plain) == set(arrays)
    _, loaded = load(target)
    assert set(loaded) == set(arrays)
    assert loaded["a.b/c.d/e"] == 4 and loaded["file"][0] == 1.0 and loaded["x.npy"][0] == 3.0


def test_numpy_scalars_in_config_become_plain_json(target: Path) -> None:
    config = {"lr": np.float32(0.5), "epochs": np.int64(3), "shuffle": np.bool_(True)}
    save(target, config=config)
    loaded, _ = load(target)
    assert loaded == {"lr": 0.5, "epochs": 3, "shuffle": True}
    assert type(loaded["epochs"]) is int and type(loaded["shuffle"]) is bool


def test_manifest_contents(target: Path) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    save(target, kind="checkpoint", format_version=3)
    manifest = read_manifest(target)

    assert manifest["format"] == FORMAT_NAME == "sparklstm"
    assert manifest["kind"] == "checkpoint"
    assert manifest["format_version"] == 3
    assert manifest["config"]["optim"]["betas"] == [0.9, 0.999]
    assert manifest["library_version"] == sparklstm.__version__
    created = datetime.fromisoformat(manifest["created"].replace("Z", "+00:00"))
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(timezone.utc)
    expected = sample_arrays()
    assert list(manifest["arrays"]) == list(expected)
    for name, array in expected.items():
        entry = manifest["arrays"][name]
        assert entry["dtype"] == array.dtype.name
        assert entry["shape"] == list(array.shape)
        assert entry["sha256"] == hashlib.sha256(array.tobytes()).hexdigest()
    assert manifest["arrays"]["step"] == {
        "dtype": "int64",
        "shape": [],
        "sha256": hashlib.sha256(np.int64(7).tobytes()).hexdigest(),
    }


def test_read_manifest_does_not_read_arrays(tmp_path: Path) -> None:
    path = save(tmp_path / "bundle")
    (path / "arrays.npz").write_bytes(b"garbage")
    assert read_manifest(path)["kind"] == "model"
    (path / "arrays.npz").unlink()
    assert read_manifest(path)["arrays"]["step"]["shape"] == []
    with pytest.raises(ModelFileError, match="missing arrays.npz"):
        load(path)


# -------------------------------------------------------------------------------- overwrite
def test_overwrite_replaces_and_leaves_no_siblings(target: Path) -> None:
    save(target, config={"v": 1}, arrays={"w": np.zeros(3)})
    save(target, config={"v": 2}, arrays={"w": np.ones(2), "b": np.array(5.0)})
    config, arrays = load(target)
    assert config == {"v": 2}
    assert set(arrays) == {"w", "b"}
    np.testing.assert_array_equal(arrays["w"], [1.0, 1.0])
    assert os.listdir(target.parent) == [target.name]


def test_overwrite_false_refuses_existing(target: Path) -> None:
    save(target, config={"v": 1})
    with pytest.raises(FileExistsError, match="already exists"):
        save(target, config={"v": 2}, overwrite=False)
    assert load(target)[0] == {"v": 1}
    assert os.listdir(target.parent) == [target.name]


def test_overwrite_false_on_new_path_writes(target: Path) -> None:
    save(target, config={"v": 1}, overwrite=False)
    assert load(target)[0] == {"v": 1}


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path) -> None:
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError, match="notes.txt"):
        save(foreign)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["results"]

    plain_file = tmp_path / "plain"
    plain_file.write_text("data", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a bundle directory"):
        save(plain_file)
    assert plain_file.read_text(encoding="utf-8") == "data"

    directory = tmp_path / "dir.npz"
    directory.mkdir()
    with pytest.raises(FileExistsError, match="not a regular file"):
        save(directory)


def test_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = save(tmp_path / "a" / "b" / "bundle.npz")
    assert load(path)[1]["step"] == 7


# ------------------------------------------------------------------ crashes and atomicity
def test_leftover_temporary_from_a_crash_is_ignored(target: Path) -> None:
    save(target, config={"v": 1})
    leftover = target.parent / f".{target.name}.tmp-0123456789abcdef"
    if target.is_dir():
        leftover.mkdir()
        (leftover / "arrays.npz").write_bytes(b"PK\x03\x04 half written")
    else:
        leftover.write_bytes(b"PK\x03\x04 half written")

    config, arrays = load(target)
    assert config == {"v": 1} and arrays["step"] == 7
    assert read_manifest(target)["config"] == {"v": 1}
    save(target, config={"v": 2})  # a later save is not disturbed either
    assert load(target)[0] == {"v": 2}


def test_only_a_temporary_left_is_not_loaded(target: Path) -> None:
    leftover = target.parent / f".{target.name}.tmp-0123456789abcdef"
    leftover.mkdir()
    with pytest.raises(ModelFileError, match="no such file or directory") as excinfo:
        load(target)
    assert str(target) in str(excinfo.value)


def test_crash_between_the_two_renames_reads_the_old_bundle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = save(tmp_path / "bundle", config={"v": 1})
    # The state a crash leaves after the old bundle was renamed aside, before the new one
    # (complete or not) was renamed in.
    aside = tmp_path / "bundle.old-1700000000000000000-abcd1234"
    os.rename(path, aside)
    partial = tmp_path / ".bundle.tmp-0123456789abcdef"
    partial.mkdir()
    (partial / "manifest.json").write_text("{}", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="sparklstm.io.model_files"):
        config, arrays = load(path)
    assert config == {"v": 1} and arrays["step"] == 7
    assert "interrupted" in caplog.text and aside.name in caplog.text
    assert read_manifest(path)["config"] == {"v": 1}
    with pytest.raises(FileExistsError):
        save(path, config={"v": 2}, overwrite=False)

    save(path, config={"v": 2})
    assert load(path)[0] == {"v": 2}
    assert not aside.exists()  # the stale old bundle is cleaned up by the next save
    assert sorted(os.listdir(tmp_path)) == [".bundle.tmp-0123456789abcdef", "bundle"]


def test_newest_old_bundle_wins(tmp_path: Path) -> None:
    save(tmp_path / "older", config={"v": "older"})
    save(tmp_path / "newer", config={"v": "newer"})
    os.rename(tmp_path / "older", tmp_path / "bundle.old-100-aa")
    os.rename(tmp_path / "newer", tmp_path / "bundle.old-200-bb")
    assert load(tmp_path / "bundle")[0] == {"v": "newer"}


def test_failed_rename_keeps_the_old_bundle(target: Path, monkeypatch) -> None:
    save(target, config={"v": 1})
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError("simulated failure while moving the new bundle in")
        return real_replace(src, dst)

    monkeypatch.setattr(persistence.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        save(target, config={"v": 2})
    monkeypatch.undo()

    assert load(target)[0] == {"v": 1}
    assert os.listdir(target.parent) == [target.name]


def test_failed_validation_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save(tmp_path / "bundle", arrays={"w": np.array([np.nan])})
    with pytest.raises(TypeError):
        save(tmp_path / "bundle.npz", config={"x": object()})
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------- refusals at save time
@pytest.mark.parametrize(
    "value",
    [
        np.array([{"a": 1}], dtype=object),
        np.zeros(2, dtype=[("x", "f4"), ("y", "i4")]),
        np.array(["text"]),
        [1.0, 2.0],
        np.float64(1.0),
    ],
    ids=["object", "structured", "string", "list", "numpy-scalar"],
)
def test_refuses_unsavable_arrays(tmp_path: Path, value) -> None:
    with pytest.raises(TypeError, match="'layer/bad.weight'"):
        save(tmp_path / "bundle", arrays={"ok": np.zeros(2), "layer/bad.weight": value})


@pytest.mark.parametrize(
    "value",
    [
        np.array([1.0, np.nan], dtype=np.float32),
        np.array([[np.inf]]),
        np.array(-np.inf, dtype=np.float16),
        np.array([complex(1, np.nan)]),
    ],
)
def test_refuses_non_finite_arrays(target: Path, value) -> None:
    with pytest.raises(ValueError, match=r"'head\.weight' holds 1 non-finite"):
        save(target, arrays={"head.weight": value})


@pytest.mark.parametrize(
    ("config", "error", "where"),
    [
        ({"optim": {"betas": [0.9, object()]}}, TypeError, "config['optim']['betas'][1]"),
        ({"a": {1: "x"}}, TypeError, "config['a'] has key 1"),
        ({"tags": {"x", "y"}}, TypeError, "config['tags']"),
        ({"blob": b"raw"}, TypeError, "config['blob']"),
        ({"array": np.zeros(2)}, TypeError, "config['array']"),
        ({"lr": float("nan")}, ValueError, "config['lr']"),
        ({"nested": [{"limit": float("inf")}]}, ValueError, "config['nested'][0]['limit']"),
    ],
)
def test_refuses_non_json_config(tmp_path: Path, config, error, where) -> None:
    with pytest.raises(error) as excinfo:
        save(tmp_path / "bundle", config=config)
    assert where in str(excinfo.value)


def test_refuses_circular_config(tmp_path: Path) -> None:
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="circular"):
        save(tmp_path / "bundle", config=loop)


@pytest.mark.parametrize("name", ["", "/abs", "a//b", "a/../b", "./a", "a\\b", "__manifest__"])
def test_refuses_bad_array_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        save(tmp_path / "bundle", arrays={name: np.zeros(1)})


def test_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="array names must be str"):
        save(tmp_path / "b", arrays={3: np.zeros(1)})
    with pytest.raises(ValueError, match="kind"):
        save(tmp_path / "b", kind="")
    with pytest.raises(TypeError, match="format_version"):
        save(tmp_path / "b", format_version=True)
    with pytest.raises(ValueError, match="format_version"):
        save(tmp_path / "b", format_version=0)
    with pytest.raises(TypeError, match="config must be a mapping"):
        save_bundle(tmp_path / "b", [1], {}, kind="model", format_version=1)
    with pytest.raises(ValueError, match="supported_versions"):
        load(save(tmp_path / "b"), versions=())


# ------------------------------------------------------------------- refusals at load time
def test_error_type_and_missing_path(tmp_path: Path) -> None:
    assert issubclass(ModelFileError, ValueError)
    with pytest.raises(ModelFileError, match="no such file or directory") as excinfo:
        load(tmp_path / "nothing")
    assert str(tmp_path / "nothing") in str(excinfo.value)
    with pytest.raises(ModelFileError):
        read_manifest(tmp_path / "nothing.npz")


def test_directory_missing_members(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelFileError, match="missing manifest.json, arrays.npz"):
        load(empty)
    path = save(tmp_path / "bundle")
    (path / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match="missing manifest.json"):
        load(path)


def test_foreign_files(tmp_path: Path) -> None:
    npy = tmp_path / "single.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ModelFileError, match="single .npy array"):
        load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.arange(3))
    with pytest.raises(ModelFileError, match="no '__manifest__' member"):
        load(plain)
    text = tmp_path / "notes.npz"
    text.write_text("hello", encoding="utf-8")
    with pytest.raises(ModelFileError, match="not a readable .npz"):
        load(text)


def test_truncated_archive(target: Path) -> None:
    save(target)
    file = npz_file(target)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as excinfo:
        load(target)
    assert str(target) in str(excinfo.value)
    assert excinfo.value.__cause__ is not None  # the zip/numpy error is chained


def test_flipped_byte_in_array_data(target: Path) -> None:
    save(target)
    file = npz_file(target)
    data = bytearray(file.read_bytes())
    needle = sample_arrays()["optim/exp_avg/weight_ih_l0"].tobytes()
    offset = data.find(needle)
    assert offset > 0 and data.find(needle, offset + 1) == -1
    data[offset + 21] ^= 0x40
    file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="weight_ih_l0") as excinfo:
        load(target)
    assert excinfo.value.__cause__ is not None  # the zip CRC check caught it


def test_changed_array_fails_the_sha256_check(target: Path) -> None:
    save(target)

    def tamper(members):
        members["head.weight"] = members["head.weight"] + 1.0  # same dtype and shape

    edit_arrays(target, tamper)
    with pytest.raises(ModelFileError, match=r"'head\.weight' is corrupted \(sha256 mismatch\)"):
        load(target)


def test_wrong_kind(target: Path) -> None:
    save(target, kind="checkpoint")
    with pytest.raises(ModelFileError, match="expected a 'model' bundle, found 'checkpoint'"):
        load(target)
    assert load(target, kind="checkpoint")[1]["step"] == 7


def test_newer_and_older_format_versions(target: Path) -> None:
    save(target, format_version=1)
    edit_manifest(target, lambda m: m.update(format_version=3))
    with pytest.raises(ModelFileError) as excinfo:
        load(target, versions=(1, 2))
    message = str(excinfo.value)
    assert "version 3" in message and "supported: 1, 2" in message and "newer" in message

    with pytest.raises(ModelFileError, match=r"version 3 .*supported: 4, 5\).*older"):
        load(target, versions=(4, 5))
    with pytest.raises(ModelFileError, match=r"supported: 2, 4\); this library cannot"):
        load(target, versions=(2, 4))
    assert load(target, versions=(1, 3))[1]["step"] == 7

    edit_manifest(target, lambda m: m.update(format_version="3"))
    with pytest.raises(ModelFileError, match="not an integer"):
        load(target)


def test_wrong_format(target: Path) -> None:
    save(target)
    edit_manifest(target, lambda m: m.update(format="keras"))
    with pytest.raises(ModelFileError, match="not a sparklstm bundle .*'keras'"):
        load(target)
    with pytest.raises(ModelFileError, match="not a sparklstm bundle"):
        read_manifest(target)


def test_missing_array(target: Path) -> None:
    save(target)
    edit_arrays(target, lambda members: members.pop("lengths"))
    with pytest.raises(ModelFileError, match="missing from the archive: 'lengths'"):
        load(target)


def test_extra_array(target: Path) -> None:
    save(target)
    edit_arrays(target, lambda members: members.update(intruder=np.zeros(2)))
    with pytest.raises(ModelFileError, match="not listed in the manifest: 'intruder'"):
        load(target)


def test_shape_and_dtype_mismatch(target: Path) -> None:
    save(target)
    edit_manifest(target, lambda m: m["arrays"]["lengths"].update(shape=[1, 3]))
    with pytest.raises(ModelFileError, match=r"'lengths' is int64 with shape \(3,\), but the"):
        load(target)

    save(target)
    edit_manifest(target, lambda m: m["arrays"]["mask"].update(dtype="float64"))
    with pytest.raises(ModelFileError, match="manifest says float64"):
        load(target)

    save(target)
    edit_manifest(target, lambda m: m["arrays"]["mask"].update(dtype="object"))
    with pytest.raises(ModelFileError, match="bad dtype 'object'"):
        load(target)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"format": "sparklstm", ', "not valid JSON"),
        (b"\xff\xfe not utf-8", "not valid JSON"),
        (b'{"format": "sparklstm", "x": NaN}', "not valid JSON"),
        (b'["format", "sparklstm"]', "not a JSON object"),
    ],
)
def test_invalid_manifest_json(target: Path, raw: bytes, match: str) -> None:
    save(target)
    write_raw_manifest(target, raw)
    with pytest.raises(ModelFileError, match=match):
        load(target)
    with pytest.raises(ModelFileError, match=match):
        read_manifest(target)


def test_malformed_manifest_fields(target: Path) -> None:
    save(target)
    edit_manifest(target, lambda m: m.update(config=[1]))
    with pytest.raises(ModelFileError, match="'config' is not a JSON object"):
        load(target)
    save(target)
    edit_manifest(target, lambda m: m["arrays"]["step"].update(sha256="abc"))
    with pytest.raises(ModelFileError, match="bad sha256"):
        load(target)


# ------------------------------------------------------------------------ pickle never runs
def test_pickle_payload_is_live(tmp_path: Path) -> None:
    """Sanity check of the payload itself: numpy *would* run it with allow_pickle=True."""
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.npz"
    np.savez(evil, w=np.array([MakesMarker(marker)], dtype=object))
    with np.load(evil, allow_pickle=True) as npz:
        npz["w"]
    assert marker.exists()


def test_pickled_array_is_refused_and_never_run(target: Path) -> None:
    save(target)
    marker = target.parent / "marker"

    def inject(members):
        members["head.weight"] = np.array([MakesMarker(marker)], dtype=object)

    edit_arrays(target, inject)
    with pytest.raises(ModelFileError, match=r"'head\.weight'") as excinfo:
        load(target)
    assert "allow_pickle" in str(excinfo.value.__cause__)
    assert not marker.exists()


def test_pickled_manifest_member_is_refused_and_never_run(tmp_path: Path) -> None:
    path = save(tmp_path / "bundle.npz")
    marker = tmp_path / "marker"
    members = read_members(path)
    members["__manifest__"] = np.array([MakesMarker(marker)], dtype=object)
    write_members(path, members)
    with pytest.raises(ModelFileError, match="__manifest__"):
        read_manifest(path)
    with pytest.raises(ModelFileError):
        load(path)
    assert not marker.exists()


def test_raw_pickle_file_is_refused_and_never_run(target: Path) -> None:
    save(target)
    marker = target.parent / "marker"
    npz_file(target).write_bytes(pickle.dumps(MakesMarker(marker)))
    with pytest.raises(ModelFileError, match="not a readable .npz archive"):
        load(target)
    assert not marker.exists()
