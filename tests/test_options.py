"""The options' one definition and its four views agree.

Every training option is a field of :class:`TrainOptions` (and every model option a field of
:class:`ModelConfig`); the one-process ``fit``, ``fit_distributed``, the Spark ML Params and
the training job's flags are built from those fields. These tests enumerate the definitions
and check, view by view, that each takes exactly the options of its scope, with the same
defaults (or the view default the option declares) and the same choices, and that a
non-default value given to a view arrives in the trainer unchanged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from sparklstm import SequenceModel
from sparklstm.model.config import ModelConfig
from sparklstm.options import Option, camel_case, option_of, options_of, plain
from sparklstm.training.history import EarlyStopping, History
from sparklstm.training.options import TrainOptions, train_options

SPARK = train_options("spark")
LOCAL = train_options("local")
MODEL = options_of(ModelConfig)


def _other_value(option: Option):
    """A valid value of ``option`` that is not its default."""
    if option.kind == "bool":
        return not option.default
    if option.kind == "choice":
        # (SGD has no default rate: it would need lr too)
        return next(c for c in option.choices if c not in (option.default, "sgd"))
    if option.kind == "int":
        low = int(option.minimum or 0)
        return (option.default or low) + 2
    if option.kind == "float":
        if option.maximum is not None:
            return (option.minimum + option.maximum) / 3
        return (option.default or 0.0) + 0.25
    if option.kind == "ints":
        return (8, 4)
    if option.kind == "floats":
        return (0.5, 2.0)
    if option.kind == "str":
        return "/tmp/somewhere"
    if option.name == "optimizer_options":
        return {"eps": 1e-7}
    if option.name == "schedule":
        return {"name": "constant", "lr": 0.02}
    raise AssertionError(f"no test value for {option.name} ({option.kind})")


def test_every_option_has_a_type_a_default_and_a_line_of_help():
    for option in SPARK + LOCAL + MODEL:
        assert option.help and "\n" not in option.help, option.name
        assert option.check(option.default) == option.default or option.kind in ("ints", "floats")
        if option.kind == "choice":
            assert option.default in option.choices, option.name
        # a non-default value is valid, and differs from the default
        assert option.check(_other_value(option)) != option.default, option.name


def test_bad_values_are_refused_by_the_definition_naming_the_option():
    for option in SPARK + LOCAL:
        bad = {"int": -5, "float": math.nan, "bool": "yes", "choice": "nonsense"}.get(option.kind)
        if bad is None or (option.kind == "int" and option.minimum is None):
            continue
        with pytest.raises((TypeError, ValueError), match=option.name):
            TrainOptions(**{option.name: bad})


def test_a_complex_number_is_not_a_real_option():
    # It used to pass as its real part (lr=1+2j trained with lr=1.0).
    with pytest.raises(TypeError, match="lr must be a number, got complex128"):
        TrainOptions(lr=np.complex128(1 + 2j))
    with pytest.raises(TypeError, match=r"dropout must be a float, got complex64"):
        ModelConfig(input_size=2, dropout=np.complex64(0.1))


def test_the_trainers_take_exactly_their_scopes():
    names = {o.name for o in dataclasses.fields(TrainOptions)}
    assert {o.name for o in SPARK} | {o.name for o in LOCAL} == names
    # What both trainers share, one of them alone, and nothing of neither.
    assert {"epochs", "batch_size", "optimizer", "lr", "seed", "early_stopping"} <= {
        o.name for o in SPARK
    } & {o.name for o in LOCAL}
    for option in SPARK:
        TrainOptions.coerce({option.name: _other_value(option)})
    for option in LOCAL:
        if "spark" not in option.scopes:
            with pytest.raises(TypeError, match=option.name):
                TrainOptions.coerce({option.name: _other_value(option)})
            with pytest.raises(ValueError, match=option.name):
                TrainOptions.coerce(TrainOptions(**{option.name: _other_value(option)}))


def _tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(np.int64)
    return x, y


def test_fit_takes_every_local_option_and_refuses_the_spark_ones():
    x, y = _tiny()
    for option in LOCAL:
        value = _other_value(option)
        if option.name == "epochs":
            value = 1
        if option.name == "batch_size":
            value = 6
        model = SequenceModel(input_size=2, hidden_sizes=[3], seed=0)
        options = {"epochs": 1, option.name: value}
        if option.name == "validation_split":
            options[option.name] = 0.25
        model.fit(x, y, progress=False, **options)
    for option in SPARK:
        if "local" in option.scopes:
            continue
        model = SequenceModel(input_size=2, hidden_sizes=[3], seed=0)
        with pytest.raises(TypeError, match=f"unknown option.*'{option.name}'"):
            model.fit(x, y, progress=False, **{option.name: _other_value(option)})


def test_spark_ml_params_are_the_spark_options_with_their_defaults_and_choices():
    from sparklstm.spark.ml import LSTMClassifier, LSTMRegressor
    from sparklstm.spark.ml.params import RunOptions

    for estimator_class in (LSTMClassifier, LSTMRegressor):
        estimator = estimator_class()
        param_names = {p.name for p in estimator.params}
        for option in SPARK:
            name = option.param_name if option.name != "seed" else "seed"
            assert name in param_names, option.name
            if option.name == "seed":
                continue  # Spark's HasSeed: a hash of the class name (declared in view_defaults)
            assert estimator.getOrDefault(name) == option.plain_default(), option.name
            assert option.help in estimator.getParam(name).doc
            if option.kind == "choice":
                for value in option.choices:
                    estimator._set(**{name: value})
                with pytest.raises(ValueError, match=name):
                    estimator._set(**{name: "nonsense"})
                estimator.clear(estimator.getParam(name))
        for option in MODEL:
            if option.param_name:
                assert estimator.getOrDefault(option.param_name) == option.plain_default()
            elif option.name != "seed":  # the model's seed is the training seed there
                assert camel_case(option.name) not in param_names, option.name
        # Nothing else: the Params are the options, Spark's columns, numClasses and the run's.
        expected = {o.param_name for o in SPARK if o.name != "seed"}
        expected |= {o.param_name for o in MODEL if o.param_name}
        expected |= {o.param_name for o in options_of(RunOptions)}
        expected |= {"seed", "featuresCol", "labelCol", "predictionCol", "validationIndicatorCol"}
        if estimator_class is LSTMClassifier:
            expected |= {"numClasses", "probabilityCol", "rawPredictionCol"}
        assert param_names == expected


def test_every_spark_ml_param_arrives_in_the_trainers_options():
    from sparklstm.spark.ml import LSTMRegressor

    assert LSTMRegressor()._training_config() == dataclasses.replace(
        TrainOptions(), seed=LSTMRegressor().getSeed()
    )
    for option in SPARK:
        value = _other_value(option)
        name = "seed" if option.name == "seed" else option.param_name
        estimator = LSTMRegressor(**{name: plain(value)})
        assert getattr(estimator._training_config(), option.name) == value, option.name
    for option in MODEL:
        if not option.param_name:
            continue
        value = _other_value(option)
        if option.name == "vocab_size":
            continue  # token inputs: checked with embedding_dim below
        estimator = LSTMRegressor(**{option.param_name: plain(value)})
        assert estimator._model_options("regression")[option.name] == plain(value), option.name
    tokens = LSTMRegressor(vocabSize=50, embeddingDim=8)._model_options("regression")
    assert (tokens["vocab_size"], tokens["embedding_dim"]) == (50, 8)


def _job_options(argv):
    from sparklstm.jobs.train import _options

    return _options(["--data", ".", "--output", "/nonexistent/model", *argv])[1]


def _flag_arguments(option: Option, value) -> list[str]:
    if option.kind == "bool":
        return [option.flag_name if value else "--no-" + option.flag_name[2:]]
    if option.kind in ("ints", "floats"):
        return [option.flag_name, *map(str, value)]
    if option.kind == "mapping":
        import json

        return [option.flag_name, json.dumps(value)]
    return [option.flag_name, str(value)]


def test_the_training_job_has_a_flag_for_every_option_and_no_defaults_of_its_own():
    from sparklstm.jobs.train import _parser

    parser = _parser()
    actions = {action.dest: action for action in parser._actions}
    for section, options in (("training", SPARK), ("model", MODEL)):
        for option in options:
            if not option.flag_name:
                assert f"{section}.{option.name}" not in actions
                continue
            action = actions[f"{section}.{option.name}"]
            assert option.flag_name in action.option_strings
            if option.kind == "choice":
                # The job's --head also picks an encoder-decoder (Seq2SeqConfig).
                extra = ("seq2seq",) if (section, option.name) == ("model", "head") else ()
                assert tuple(action.choices) == option.choices + extra
            assert "(default:" in action.help
    # Given nothing, the job passes nothing but its declared seed: the library's defaults apply.
    options = _job_options([])
    assert options["training"] == {"seed": option_of(TrainOptions, "seed").view_defaults["flag"]}
    assert options["model"] == {}


def test_every_flag_arrives_in_the_trainers_options():
    for option in SPARK:
        value = _other_value(option)
        if option.name == "cache_dir":
            value = "/tmp/cache"
        training = _job_options(_flag_arguments(option, value))["training"]
        assert getattr(TrainOptions.coerce(training), option.name) == value, option.name
    for option in MODEL:
        if not option.flag_name:
            continue
        value = _other_value(option)
        model = _job_options(_flag_arguments(option, value))["model"]
        assert option.check(model[option.name]) == value, option.name


# ------------------------------------------------------------------ history, early stopping
def test_early_stopping_counts_observations_without_improvement():
    params = {"w": np.zeros(2)}
    rule = EarlyStopping(patience=2)
    stops = []
    for round_number, loss in enumerate([3.0, 2.0, 2.5, 2.0, 1.0, 1.5, 1.2], start=1):
        params["w"] += 1
        stops.append(rule.observe(loss, round_number, lambda: params))
    # 2.5 and 2.0 (not lower than 2.0) are two bad ones in a row: stop after round 4...
    assert stops[:4] == [False, False, False, True]
    assert rule.best_round == 5 and rule.best_loss == 1.0
    np.testing.assert_array_equal(rule.best_params["w"], [5.0, 5.0])  # a copy, not a view
    resumed = EarlyStopping.resumed(2, rule.state(), rule.best_params)
    assert (resumed.best_round, resumed.best_loss, resumed.bad) == (5, 1.0, 2)
    assert resumed.should_stop
    # Without a patience the best is tracked, no parameters are copied and nothing stops.
    tracker = EarlyStopping(patience=None)
    assert not any(tracker.observe(loss, i, lambda: params) for i, loss in enumerate([3, 4, 5]))
    assert tracker.best_round == 0 and tracker.best_params is None


def test_one_history_for_both_trainers():
    local = History(rows=[{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}], best_round=2)
    spark = History(
        rows=[{"round": r, "epoch": (r + 1) // 2, "train_loss": 1.0 / r} for r in (1, 2, 3)],
        best_round=3,
    )
    assert local.best_epoch == 2 and spark.best_epoch == 2
    assert spark["epoch"] == [1, 1, 2] and len(spark) == 3
    assert (
        set(local.to_dict())
        == set(spark.to_dict())
        == {
            "rows",
            "best_round",
            "stopped_early",
            "summary",
        }
    )
    with pytest.raises(KeyError, match="val_loss"):
        local["val_loss"]


def test_the_one_process_demo_job_takes_the_local_options_as_flags(tmp_path, capsys):
    from sparklstm.jobs.train_local import main

    out = tmp_path / "model"
    argv = ["--train-size", "64", "--test-size", "16", "--seq-len", "12", "--min-len", "6"]
    argv += ["--epochs", "2", "--cell", "gru", "--hidden-sizes", "5", "--no-shuffle"]
    assert main([*argv, "--batch-size", "16", "--no-progress", "--output", str(out)]) == 0
    assert SequenceModel.load(out).config.cell == "gru"
    assert '"epochs": 2' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--validation-split", "0.2"])  # not a flag of the demo (it has a test set)
