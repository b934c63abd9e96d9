"""The model's configuration: a frozen dataclass, validated once, stored as JSON with the model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparklstm.nn.recurrent import STACK_CELLS
from sparklstm.options import boolean, choice, integer, integers, real, reals
from sparklstm.validation import (
    check_choice,
    check_no_unknown_keys,
    check_positive_int,
    check_probability,
    resolve_dtype,
)

__all__ = ["ModelConfig", "CELLS", "HEADS", "LOSSES", "TASKS"]

CELLS = STACK_CELLS  # ("lstm", "peephole", "gru", "cifg"): the cells nn.make_stack builds
HEADS = ("last", "all")
TASKS = ("classification", "regression")
# Regression losses: "mse" (the default) or "gaussian_nll", whose head predicts a mean and a
# log-variance per target (2 x output_size outputs) and is trained by the Gaussian NLL.
LOSSES = ("mse", "gaussian_nll")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a :class:`~sparklstm.model.SequenceModel`'s structure.

    Parameters
    ----------
    input_size : features per step for float inputs ``[batch, time, input_size]``.
    vocab_size : number of token ids for integer inputs ``[batch, time]`` (an embedding layer
        comes first). Give exactly one of ``input_size`` and ``vocab_size``.
    embedding_dim : embedding width (default 32; token inputs only).
    cell : ``"lstm"``, ``"peephole"`` (LSTM with peephole connections), ``"gru"`` or ``"cifg"``
        (coupled input-forget gate LSTM, ``f = 1 - i``: three gate blocks instead of four, so
        ``3((I + H) H + 2H)`` parameters per direction and layer against the LSTM's
        ``4((I + H) H + 2H)``; see :class:`sparklstm.nn.CIFG`).
    hidden_sizes : hidden size of each stacked recurrent layer (they may differ).
    bidirectional : every recurrent layer runs in both directions.
    dropout : dropout rate on the outputs of every recurrent layer but the last (training only).
    head : ``"last"`` — one output per sequence, from the final states of the top layer (the
        output at the last valid step; for a bidirectional layer concatenated with the reverse
        direction's output at the first step); ``"all"`` — one output per valid step.
    task : ``"classification"`` (softmax cross-entropy) or ``"regression"`` (mean squared error).
    output_size : number of classes, or of regression targets per output.
    class_weights : per-class loss weights (classification only).
    regression_loss : ``"mse"`` (the default) or ``"gaussian_nll"`` (regression only):
        the head outputs ``[μ_1..μ_O, s_1..s_O]``, a mean and a log-variance ``s = log σ²``
        per target (``2 * output_size`` outputs), trained by the Gaussian negative
        log-likelihood (:func:`sparklstm.nn.losses.gaussian_nll`); the predicted spread is
        what anomaly scores (:mod:`sparklstm.anomaly`) standardise by.
    forget_bias : initial LSTM forget-gate bias (for ``"cifg"``, whose forget gate is
        ``1 - i``: the input gate's initial bias is ``-forget_bias``, so ``f`` starts near
        ``σ(forget_bias)`` as in the LSTM; unused by ``"gru"``).
    dtype : ``"float32"`` (default) or ``"float64"``.
    seed : seed for initialisation (and the default for training randomness).
    """

    # Each field's definition is read by the Spark ML Params and the training job's flags
    # (sparklstm.options); param="" / flag="" mark a view that does not take it (the data
    # decides input sizes; the Spark estimators decide the task by their class, and numClasses
    # is a Param of LSTMClassifier only; the seed is the training seed there).
    input_size: int | None = integer(
        None, "features per step of float inputs", optional=True, param="", flag=""
    )
    vocab_size: int | None = integer(
        None,
        "number of token ids for token inputs (an embedding comes first); None: max id + 1 "
        "from the data",
        optional=True,
    )
    embedding_dim: int | None = integer(
        None, "embedding width for token inputs (None: 32)", optional=True
    )
    cell: str = choice(
        "lstm",
        CELLS,
        "recurrent cell: lstm, peephole (LSTM with peephole connections) or gru; also cifg "
        "(LSTM with coupled input and forget gates, f = 1 - i)",
        param="cellType",
    )
    hidden_sizes: tuple[int, ...] = integers((64,), "hidden size of each stacked recurrent layer")
    bidirectional: bool = boolean(False, "every recurrent layer runs in both directions")
    dropout: float = real(
        0.0,
        "dropout rate in [0, 1) between stacked recurrent layers (training only)",
        minimum=0.0,
        maximum=1.0,
        open_maximum=True,
    )
    head: str = choice(
        "last",
        HEADS,
        "last: one output per sequence; all: one output per valid step (per-step labels)",
    )
    task: str = choice(
        "classification",
        TASKS,
        "classification (softmax cross-entropy) or regression (mean squared error); the job's "
        "default: classification for integer labels, else regression",
        param="",
        view_defaults={"flag": None},
    )
    output_size: int = integer(
        2,
        "number of classes (the output layer's size), or of regression targets; None (the "
        "default in the jobs and Spark ML) takes it from the labels, which must then be 0..K-1 "
        "with none missing",
        param="",
        flag="--num-classes",
        view_defaults={"flag": None},
    )
    class_weights: tuple[float, ...] | None = reals(
        None, "per-class loss weights (classification only)", optional=True, param="", flag=""
    )
    # Not a Param of the regressor nor a flag of the training job yet (their transform and
    # predict read output_size columns); LSTMAnomalyDetector takes it as its Param.
    regression_loss: str = choice(
        "mse",
        LOSSES,
        "regression loss: mse, or gaussian_nll (the head predicts a mean and a log-variance per "
        "target; trained by the Gaussian negative log-likelihood); classification always uses "
        "softmax cross-entropy",
        param="",
        flag="",
    )
    forget_bias: float = real(1.0, "initial LSTM forget-gate bias", param="", flag="")
    dtype: str = choice("float32", ("float32", "float64"), "float type", param="")
    seed: int | None = integer(
        None, "seed of the initial weights", minimum=0, optional=True, param="", flag=""
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError(
                "give exactly one of input_size (float inputs) and vocab_size (tokens)"
            )
        if self.input_size is not None:
            check_positive_int("input_size", self.input_size)
            if self.embedding_dim is not None:
                raise ValueError("embedding_dim applies to token inputs (vocab_size) only")
        else:
            check_positive_int("vocab_size", self.vocab_size)
            set_(
                self, "embedding_dim", check_positive_int("embedding_dim", self.embedding_dim or 32)
            )
        check_choice("cell", self.cell, CELLS)
        check_choice("head", self.head, HEADS)
        check_choice("task", self.task, TASKS)
        if isinstance(self.hidden_sizes, (int, np.integer)):
            set_(self, "hidden_sizes", (int(self.hidden_sizes),))
        if not isinstance(self.hidden_sizes, Sequence) or len(self.hidden_sizes) == 0:
            raise ValueError(
                f"hidden_sizes must be a non-empty list of ints, got {self.hidden_sizes!r}"
            )
        set_(
            self,
            "hidden_sizes",
            tuple(
                check_positive_int(f"hidden_sizes[{i}]", h) for i, h in enumerate(self.hidden_sizes)
            ),
        )
        if not isinstance(self.bidirectional, bool):
            raise TypeError(f"bidirectional must be a bool, got {self.bidirectional!r}")
        check_probability("dropout", self.dropout)
        check_positive_int("output_size", self.output_size)
        if self.task == "classification" and self.output_size < 2:
            raise ValueError(
                f"output_size must be >= 2 classes for classification, got {self.output_size}"
            )
        if self.class_weights is not None:
            if self.task != "classification":
                raise ValueError("class_weights apply to task='classification' only")
            weights = tuple(float(w) for w in self.class_weights)
            if len(weights) != self.output_size:
                raise ValueError(
                    f"class_weights has {len(weights)} entries; output_size is {self.output_size}"
                )
            if not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
                raise ValueError("class_weights must be finite, >= 0 and not all zero")
            set_(self, "class_weights", weights)
        check_choice("regression_loss", self.regression_loss, LOSSES)
        if self.regression_loss != "mse" and self.task != "regression":
            raise ValueError(
                f"regression_loss={self.regression_loss!r} applies to task='regression' only; "
                "classification always uses softmax cross-entropy (leave regression_loss unset)"
            )
        if not np.isfinite(self.forget_bias):
            raise ValueError("forget_bias must be finite")
        set_(self, "dtype", resolve_dtype(self.dtype).name)
        if self.seed is not None:
            check_positive_int("seed", self.seed, minimum=0)

    @property
    def uses_tokens(self) -> bool:
        return self.vocab_size is not None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gaussian(self) -> bool:
        """Whether the head predicts a mean and a log-variance per target."""
        return self.regression_loss == "gaussian_nll"

    @property
    def head_size(self) -> int:
        """Outputs of the dense head: ``output_size``, twice that for a Gaussian head."""
        return 2 * self.output_size if self.gaussian else self.output_size

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        if self.class_weights is not None:
            data["class_weights"] = list(self.class_weights)
        if self.regression_loss == "mse":
            # Left out at its default, so the files of models without it are as before.
            del data["regression_loss"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        check_no_unknown_keys("model config", data, (f.name for f in dataclasses.fields(cls)))
        values = dict(data)
        if values.get("hidden_sizes") is not None and not isinstance(values["hidden_sizes"], int):
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        if values.get("class_weights") is not None:
            values["class_weights"] = tuple(values["class_weights"])
        return cls(**values)
