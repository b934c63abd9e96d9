"""``SequenceModel.save`` / ``SequenceModel.load``: exact round trips for every kind of model,
metadata, refusal of damaged, edited or pickled files (without running any code), and saving
over a model that survives a write failing midway."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.io import model_files as persistence
from sparklstm.io.model_files import ModelFileError
from sparklstm.model import FORMAT_VERSION

RNG = np.random.default_rng
LAYOUTS = ["model", "model.npz"]


class MakesMarker:
    """Unpickling this object creates the file ``marker`` (i.e. it runs code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(params=LAYOUTS)
def target(request, tmp_path: Path) -> Path:
    return tmp_path / request.param


# ---------------------------------------------------------------------------------- helpers
def _data(config: dict, n: int = 12, t: int = 7, seed: int = 0):
    rng = RNG(seed)
    lengths = rng.integers(2, t + 1, size=n)
    lengths[0] = t
    if config.get("vocab_size"):
        x = rng.integers(0, config["vocab_size"], size=(n, t))
    else:
        x = rng.normal(size=(n, t, config["input_size"]))
    per_step = config.get("head") == "all"
    output = config.get("output_size", 2)
    if config.get("task", "classification") == "classification":
        y = rng.integers(0, output, size=(n, t) if per_step else n)
    else:
        y = rng.normal(size=(n, t, output) if per_step else (n, output))
    return x, y, lengths


MODELS = {
    "lstm": dict(input_size=3, hidden_sizes=[6], output_size=3),
    "peephole": dict(input_size=3, cell="peephole", hidden_sizes=[5, 4], output_size=2),
    "gru": dict(input_size=3, cell="gru", hidden_sizes=[6], task="regression", output_size=2),
    "bidirectional": dict(
        input_size=2, cell="lstm", hidden_sizes=[5, 3], bidirectional=True, dropout=0.2
    ),
    "bigru-all": dict(
        input_size=2,
        cell="gru",
        hidden_sizes=[4],
        bidirectional=True,
        head="all",
        task="regression",
        output_size=1,
    ),
    "tokens": dict(
        vocab_size=9, embedding_dim=5, hidden_sizes=[7], head="all", output_size=9, cell="gru"
    ),
    "float64": dict(
        input_size=3,
        cell="peephole",
        hidden_sizes=[4],
        dtype="float64",
        class_weights=[0.5, 2.0, 1.0],
        output_size=3,
        forget_bias=0.5,
    ),
}


def _trained(name: str, seed: int | None = 0) -> tuple[SequenceModel, tuple]:
    """A model whose parameters differ from any fresh initialisation (one epoch of training)."""
    config = MODELS[name]
    model = SequenceModel(**config, seed=seed)
    data = _data(config)
    model.fit(*data, epochs=1, batch_size=4, lr=0.05, seed=1, progress=False)
    return model, data


def _assert_same_params(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _npz(path: Path) -> Path:
    return path / persistence.ARRAYS_NAME if path.is_dir() else path


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(manifest, parameter arrays) of a bundle, read without any check."""
    with np.load(_npz(path), allow_pickle=False) as npz:
        members = {name: npz[name] for name in npz.files}
    if path.is_dir():
        manifest = json.loads((path / persistence.MANIFEST_NAME).read_text("utf-8"))
    else:
        manifest = json.loads(members.pop(persistence.MANIFEST_MEMBER).tobytes().decode())
    return manifest, members


def _sha256(array: np.ndarray) -> str:
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return hashlib.sha256(little.tobytes()).hexdigest()


def _write(path: Path, manifest: dict, arrays: dict, *, fix_digests: bool = True) -> None:
    """Rewrite a bundle in place (pickling allowed, as an attacker's writer would)."""
    if fix_digests:
        manifest["arrays"] = {
            name: {"dtype": a.dtype.name, "shape": list(a.shape), "sha256": _sha256(a)}
            for name, a in arrays.items()
            if a.dtype != object
        }
    raw = json.dumps(manifest).encode("utf-8")
    members = dict(arrays)
    if not path.is_dir():
        members = {persistence.MANIFEST_MEMBER: np.frombuffer(raw, dtype=np.uint8), **members}
    with open(_npz(path), "wb") as handle:
        np.savez(handle, **members)
    if path.is_dir():
        (path / persistence.MANIFEST_NAME).write_bytes(raw)


def _edit(path: Path, edit, *, fix_digests: bool = True) -> None:
    manifest, arrays = _read(path)
    edit(manifest, arrays)
    _write(path, manifest, arrays, fix_digests=fix_digests)


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_exact(target: Path, name: str) -> None:
    model, (x, y, lengths) = _trained(name)
    fresh = SequenceModel(**MODELS[name], seed=0)
    assert any(not np.array_equal(fresh.params[k], v) for k, v in model.params.items())
    returned = model.save(target)
    assert returned == target
    if target.suffix == ".npz":
        assert target.is_file()
    else:
        assert sorted(os.listdir(target)) == ["arrays.npz", "manifest.json"]
    assert sorted(os.listdir(target.parent)) == [target.name]  # no temporary left behind

    loaded = SequenceModel.load(target)
    assert loaded.config == model.config
    assert loaded.config.to_dict() == model.config.to_dict()
    assert loaded.dtype == model.dtype
    _assert_same_params(loaded.state_dict(), model.state_dict())
    np.testing.assert_array_equal(loaded.forward(x, lengths), model.forward(x, lengths))
    np.testing.assert_array_equal(loaded.predict(x, lengths), model.predict(x, lengths))
    assert loaded.evaluate(x, y, lengths) == model.evaluate(x, y, lengths)
    assert loaded.metadata == {}
    # A loaded model trains on exactly like the original started afresh (model files hold no
    # optimizer state; without initial_epoch=0 the original would continue its own run).
    model.fit(x, y, lengths, epochs=1, batch_size=4, seed=2, progress=False, initial_epoch=0)
    loaded.fit(x, y, lengths, epochs=1, batch_size=4, seed=2, progress=False)
    _assert_same_params(loaded.state_dict(), model.state_dict())


def test_round_trip_of_a_model_without_seed_and_str_paths(tmp_path: Path) -> None:
    model, (x, _, lengths) = _trained("lstm", seed=None)
    assert model.config.seed is None
    path = str(tmp_path / "unseeded.npz")
    model.save(path)
    loaded = SequenceModel.load(path)
    assert loaded.config.seed is None
    _assert_same_params(loaded.state_dict(), model.state_dict())
    np.testing.assert_array_equal(loaded.predict_proba(x, lengths), model.predict_proba(x, lengths))


def test_token_model_generates_the_same_text_after_loading(target: Path) -> None:
    model, _ = _trained("tokens")
    model.save(target)
    loaded = SequenceModel.load(target)
    prime = np.array([1, 4, 2, 8])
    for temperature in (0.0, 1.0):
        np.testing.assert_array_equal(
            loaded.generate(prime, 12, temperature=temperature, rng=3),
            model.generate(prime, 12, temperature=temperature, rng=3),
        )


def test_manifest_records_kind_version_and_config(target: Path) -> None:
    model, _ = _trained("bidirectional")
    model.save(target)
    manifest = persistence.read_manifest(target)
    assert manifest["format"] == "sparklstm"
    assert manifest["kind"] == "model"
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["config"]["model"] == model.config.to_dict()
    assert set(manifest["arrays"]) == set(model.params)
    for name, entry in manifest["arrays"].items():
        assert entry["shape"] == list(model.params[name].shape)
        assert entry["dtype"] == "float32"
        assert entry["sha256"] == _sha256(model.params[name])


def test_metadata_round_trip(target: Path) -> None:
    model, _ = _trained("gru")
    metadata = {
        "vocab": {"type": "CharVocab", "unknown": "\ufffd", "symbols": ["a", "é", " "]},
        "epochs": np.int64(3),
        "best_val_loss": np.float32(0.25),
        "converged": np.bool_(True),
        "history": [{"loss": 0.5, "lr": 0.01}, {"loss": 0.25, "lr": 0.005}],
        "shape": (4, 2),
        "note": None,
    }
    model.save(target, metadata=metadata)
    loaded = SequenceModel.load(target)
    assert loaded.metadata == {
        "vocab": {"type": "CharVocab", "unknown": "\ufffd", "symbols": ["a", "é", " "]},
        "epochs": 3,
        "best_val_loss": 0.25,
        "converged": True,
        "history": [{"loss": 0.5, "lr": 0.01}, {"loss": 0.25, "lr": 0.005}],
        "shape": [4, 2],
        "note": None,
    }
    assert type(loaded.metadata["epochs"]) is int
    assert type(loaded.metadata["converged"]) is bool
    assert persistence.read_manifest(target)["config"]["metadata"] == loaded.metadata


@pytest.mark.parametrize(
    "metadata,error,match",
    [
        ({"when": object()}, TypeError, r"config\['metadata'\]\['when'\] has type object"),
        ({"loss": float("nan")}, ValueError, r"config\['metadata'\]\['loss'\] is nan"),
        ({1: "x"}, TypeError, "JSON object keys must be str"),
    ],
)
def test_unsavable_metadata_is_refused_before_writing(tmp_path, metadata, error, match) -> None:
    model, _ = _trained("lstm")
    with pytest.raises(error, match=match):
        model.save(tmp_path / "model", metadata=metadata)
    assert os.listdir(tmp_path) == []


def test_saving_over_a_model_replaces_it(target: Path) -> None:
    old, _ = _trained("lstm", seed=0)
    new, _ = _trained("lstm", seed=5)
    old.save(target, metadata={"version": 1})
    new.save(target, metadata={"version": 2})
    loaded = SequenceModel.load(target)
    _assert_same_params(loaded.state_dict(), new.state_dict())
    assert loaded.metadata == {"version": 2}
    assert sorted(os.listdir(target.parent)) == [target.name]


# ------------------------------------------------------------------------- damaged files
def _load_fails(path: Path, match: str) -> ModelFileError:
    with pytest.raises(ModelFileError, match=match) as excinfo:
        SequenceModel.load(path)
    assert str(excinfo.value).startswith(str(path)), excinfo.value  # it names the file
    assert isinstance(excinfo.value, ValueError)
    return excinfo.value


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_archive(target: Path, keep: float) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    file = _npz(target)
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])
    _load_fails(target, "not a readable .npz archive|unreadable")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    _load_fails(empty, "not a readable .npz archive")
    _load_fails(tmp_path / "nowhere", "no such file or directory")
    (tmp_path / "dir").mkdir()
    _load_fails(tmp_path / "dir", "missing manifest.json, arrays.npz")


@pytest.mark.parametrize("name", ["head.weight", "rnn.weight_hh_l0"])
def test_flipped_byte_in_a_parameter(target: Path, name: str) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    file = _npz(target)
    data = bytearray(file.read_bytes())
    payload = model.params[name].astype("<f4").tobytes()
    start = bytes(data).find(payload)
    assert start > 0 and bytes(data).count(payload) == 1
    data[start + len(payload) // 2] ^= 0x10
    file.write_bytes(bytes(data))
    # The zip's CRC-32 catches the flip while the member is read (the digest would as well).
    _load_fails(target, rf"array '{re.escape(name)}' is unreadable .*Bad CRC-32")


def test_changed_parameter_fails_the_checksum(target: Path) -> None:
    # A consistent archive (valid zip CRCs) with one value changed: only the digest catches it.
    model, _ = _trained("gru")
    model.save(target)

    def nudge(manifest, arrays):
        arrays["head.bias"] = arrays["head.bias"] + np.float32(1e-3)

    _edit(target, nudge, fix_digests=False)
    _load_fails(target, r"array 'head\.bias' is corrupted \(sha256 mismatch\)")


@pytest.mark.parametrize(
    "edit,match",
    [
        (
            lambda m, a: m.update(format_version=FORMAT_VERSION + 1),
            "format version 2 is not supported .*newer than this library",
        ),
        (lambda m, a: m.update(format_version="1"), "format_version '1' is not an integer"),
        (lambda m, a: m.update(kind="checkpoint"), "expected a 'model' bundle, found 'checkpoint'"),
        (lambda m, a: m.update(format="other"), "not a sparklstm bundle"),
        (
            lambda m, a: m["config"]["model"].update(hidden_size=4),
            "not a valid sparklstm model: .*unknown option\\(s\\) 'hidden_size'",
        ),
        (
            lambda m, a: m["config"]["model"].update(cell="rnn"),
            "not a valid sparklstm model: cell must be one of",
        ),
        (
            lambda m, a: m["config"]["model"].update(hidden_sizes=[7]),
            r"not a valid sparklstm model: state\['rnn.weight_ih_l0'\] has shape \(24, 3\), "
            r"expected \(28, 3\)",
        ),
        (lambda m, a: m["config"].pop("model"), "not a valid sparklstm model: 'model'"),
        (lambda m, a: m["config"].update(model=[1, 2]), "not a valid sparklstm model"),
        (lambda m, a: m["config"].update(metadata=[1, 2]), "metadata is not a JSON object"),
        (
            # consistent manifest and archive, but the shape is not the model's
            lambda m, a: a.update({"head.weight": a["head.weight"][:, :-1].copy()}),
            r"state\['head.weight'\] has shape \(3, 5\), expected \(3, 6\)",
        ),
        (
            lambda m, a: a.pop("head.bias"),
            r"not a valid sparklstm model: state mismatch: missing \['head.bias'\]",
        ),
        (
            lambda m, a: a.update({"extra": np.zeros(2, np.float32)}),
            r"state mismatch: missing none, unexpected \['extra'\]",
        ),
        (
            lambda m, a: a["head.bias"].__setitem__(0, np.nan),
            r"state\['head.bias'\] contains NaN or Inf",
        ),
    ],
    ids=[
        "newer-version",
        "version-not-int",
        "wrong-kind",
        "wrong-format",
        "unknown-config-key",
        "bad-config-value",
        "config-disagrees-with-shapes",
        "no-model-config",
        "model-config-not-object",
        "metadata-not-object",
        "wrong-shape",
        "missing-parameter",
        "extra-parameter",
        "nan-parameter",
    ],
)
def test_edited_manifest_or_arrays_are_refused(target: Path, edit, match: str) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    _edit(target, edit)
    _load_fails(target, match)


def test_manifest_shape_edit_without_the_array(target: Path) -> None:
    model, _ = _trained("lstm")
    model.save(target)

    def edit(manifest, arrays):
        manifest["arrays"]["head.weight"]["shape"] = [6, 3]

    _edit(target, edit, fix_digests=False)
    _load_fails(target, r"'head.weight' is float32 with shape \(3, 6\), but the manifest says")


# --------------------------------------------------------------------- pickle never runs
# (that the payload would run if pickles were allowed: tests/test_persistence.py)
def test_pickled_parameter_is_refused_and_never_run(target: Path) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    marker = target.parent / "marker"

    def inject(manifest, arrays):
        arrays["head.weight"] = np.array([MakesMarker(marker)], dtype=object)

    _edit(target, inject, fix_digests=False)  # the manifest still says float32
    error = _load_fails(target, r"array 'head\.weight' is unreadable")
    assert "allow_pickle" in str(error.__cause__)
    assert not marker.exists()


def test_pickled_parameter_declared_as_object_is_refused(target: Path) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    marker = target.parent / "marker"

    def inject(manifest, arrays):
        arrays["head.weight"] = np.array([MakesMarker(marker)], dtype=object)
        manifest["arrays"]["head.weight"]["dtype"] = "object"

    _edit(target, inject, fix_digests=False)
    _load_fails(target, r"array 'head\.weight' has bad dtype 'object'")
    assert not marker.exists()


def test_pickled_manifest_is_refused_and_never_run(tmp_path: Path) -> None:
    model, _ = _trained("lstm")
    path = model.save(tmp_path / "model.npz")
    marker = tmp_path / "marker"
    manifest, arrays = _read(path)
    members = {persistence.MANIFEST_MEMBER: np.array([MakesMarker(marker)], dtype=object)}
    with open(path, "wb") as handle:
        np.savez(handle, **members, **arrays)
    _load_fails(path, "'__manifest__' is unreadable")
    assert not marker.exists()


def test_raw_pickle_instead_of_the_archive_is_refused_and_never_run(target: Path) -> None:
    model, _ = _trained("lstm")
    model.save(target)
    marker = target.parent / "marker"
    _npz(target).write_bytes(pickle.dumps(MakesMarker(marker)))
    _load_fails(target, "not a readable .npz archive")
    assert not marker.exists()


def test_single_npy_instead_of_the_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    _load_fails(path, "holds a single .npy array")


# ------------------------------------------------------------------- failed saves are safe
def _write_array_failing_after(monkeypatch, count: int) -> list[str]:
    """Make NumPy's .npy writer raise on its ``count + 1``-th call (after ``count`` arrays)."""
    calls: list[str] = []
    original = np.lib.format.write_array

    def flaky(fp, array, *args, **kwargs):
        calls.append(array.dtype.name)
        if len(calls) > count:
            raise OSError("disk full (simulated)")
        return original(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", flaky)
    return calls


@pytest.mark.parametrize("count", [0, 2])
def test_failed_write_midway_keeps_the_old_model(target: Path, monkeypatch, count: int) -> None:
    old, (x, _, lengths) = _trained("lstm", seed=0)
    old.save(target, metadata={"version": 1})
    files = [target] if target.is_file() else sorted(target.iterdir())
    before = {path: path.read_bytes() for path in files}
    new, _ = _trained("lstm", seed=7)
    calls = _write_array_failing_after(monkeypatch, count)
    with pytest.raises(OSError, match="disk full"):
        new.save(target, metadata={"version": 2})
    assert len(calls) == count + 1  # it really failed midway through the arrays
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in before} == before
    assert sorted(os.listdir(target.parent)) == [target.name]  # the temporary was removed
    loaded = SequenceModel.load(target)
    assert loaded.metadata == {"version": 1}
    _assert_same_params(loaded.state_dict(), old.state_dict())
    np.testing.assert_array_equal(loaded.predict(x, lengths), old.predict(x, lengths))
    # and the next save works
    new.save(target, metadata={"version": 2})
    _assert_same_params(SequenceModel.load(target).state_dict(), new.state_dict())


def test_failing_npz_writer_keeps_the_old_model(target: Path, monkeypatch) -> None:
    old, _ = _trained("gru", seed=0)
    old.save(target)
    new, _ = _trained("gru", seed=3)

    def broken(handle, arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("writer crashed")

    monkeypatch.setattr(persistence, "_write_npz", broken)
    with pytest.raises(RuntimeError, match="writer crashed"):
        new.save(target)
    monkeypatch.undo()
    assert sorted(os.listdir(target.parent)) == [target.name]
    _assert_same_params(SequenceModel.load(target).state_dict(), old.state_dict())


def test_unsavable_parameters_leave_the_old_model(target: Path) -> None:
    old, _ = _trained("lstm", seed=0)
    old.save(target)
    broken, _ = _trained("lstm", seed=2)
    broken.params["head.bias"][0] = np.inf
    with pytest.raises(ValueError, match="'head.bias' holds 1 non-finite value"):
        broken.save(target)
    _assert_same_params(SequenceModel.load(target).state_dict(), old.state_dict())


def test_archive_members_are_plain_npy(target: Path) -> None:
    """The parameters are ordinary ``.npy`` members that any NumPy reads without pickle."""
    model, _ = _trained("peephole")
    model.save(target)
    with zipfile.ZipFile(_npz(target)) as archive:
        names = set(archive.namelist())
    expected = {f"{name}.npy" for name in model.params}
    if target.suffix == ".npz":
        expected.add("__manifest__.npy")
    assert names == expected
    with np.load(_npz(target), allow_pickle=False) as npz:
        for name, value in model.params.items():
            np.testing.assert_array_equal(npz[name], value)
