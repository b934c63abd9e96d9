"""``SequenceModel``: the user-facing model (build, fit, predict, evaluate, generate, save)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparklstm.data.sequence_data import SequenceData, prepare_data
from sparklstm.metrics import metrics_from_totals
from sparklstm.model.config import ModelConfig
from sparklstm.model.files import ModelFile
from sparklstm.model.network import Network
from sparklstm.nn.losses import (
    gaussian_nll,
    gaussian_nll_terms,
    mean_squared_error,
    softmax,
    softmax_cross_entropy,
    split_gaussian,
)

__all__ = ["SequenceModel", "compute_loss", "point_predictions", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_KIND = "model"


def compute_loss(
    config: ModelConfig, outputs: np.ndarray, batch: SequenceData, layout
) -> tuple[float, np.ndarray]:
    """Loss of the head's ``outputs`` against ``batch.targets`` and its gradient."""
    targets = batch.targets if config.head == "last" else layout.pack(batch.targets)
    if config.task == "classification":
        weights = None
        if config.class_weights is not None:
            weights = np.asarray(config.class_weights, dtype=outputs.dtype)
        return softmax_cross_entropy(outputs, targets, weights)
    if config.gaussian:
        return gaussian_nll(outputs, targets)
    return mean_squared_error(outputs, targets)


def point_predictions(config: ModelConfig, outputs: np.ndarray) -> np.ndarray:
    """The head's point predictions: its outputs, or a Gaussian head's means (the first
    ``output_size`` of its ``2 * output_size`` outputs)."""
    return outputs[..., : config.output_size] if config.gaussian else outputs


class SequenceModel(ModelFile):
    """An LSTM/GRU sequence model trained with exact BPTT in NumPy.

    Parameters
    ----------
    **config
        The fields of :class:`ModelConfig`: ``input_size`` or ``vocab_size``,
        ``embedding_dim``, ``cell`` ("lstm" | "peephole" | "gru" | "cifg"), ``hidden_sizes``,
        ``bidirectional``, ``dropout``, ``head`` ("last" | "all"), ``task``
        ("classification" | "regression"), ``output_size``, ``class_weights``,
        ``regression_loss`` ("mse" | "gaussian_nll"), ``forget_bias``, ``seed``, ``dtype``.
    embedding_weights : (vocab_size, embedding_dim) array, optional
        Initial embedding table (e.g. from :func:`sparklstm.data.load_word_vectors`).

    Examples
    --------
    >>> import numpy as np
    >>> from sparklstm import SequenceModel
    >>> model = SequenceModel(input_size=2, hidden_sizes=[16], output_size=3, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(8, 5, 2)).astype(np.float32)
    >>> model.predict_proba(x, lengths=[5, 3, 5, 1, 2, 5, 4, 5]).shape
    (8, 3)
    """

    file_kind = MODEL_KIND
    file_version = FORMAT_VERSION
    file_what = "sparklstm model"

    def __init__(self, embedding_weights: np.ndarray | None = None, **config: Any) -> None:
        if "config" in config and isinstance(config["config"], ModelConfig):
            self.config = config.pop("config")
            if config:
                raise TypeError(f"unexpected arguments beside config: {sorted(config)}")
        else:
            try:
                self.config = ModelConfig.from_dict(config)
            except TypeError as exc:
                raise TypeError(f"SequenceModel: {exc}") from None
        self.network = Network(self.config)
        # Where the last fit stopped (a sparklstm.training.fit.FitState): the next fit continues it.
        self.fit_state = None
        if embedding_weights is not None:
            self.set_embedding(embedding_weights)

    @classmethod
    def from_config(cls, config: ModelConfig | Mapping[str, Any]) -> SequenceModel:
        if not isinstance(config, ModelConfig):
            config = ModelConfig.from_dict(config)
        return cls(config=config)

    # ------------------------------------------------------------- parameters
    @property
    def params(self) -> dict[str, np.ndarray]:
        """The live parameter arrays (updating them in place updates the model)."""
        return self.network.params

    @property
    def dtype(self) -> np.dtype:
        return self.network.dtype

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters, keyed ``embedding.weight``, ``rnn.weight_ih_l0``, ...,
        ``head.weight``, ``head.bias``; the ``rnn.`` entries match ``torch.nn.LSTM``/``GRU``."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if strict and (missing or unexpected):
            raise ValueError(
                f"state mismatch: missing {missing or 'none'}, unexpected {unexpected or 'none'}"
            )
        for key, target in self.params.items():
            if key not in state:
                continue
            value = np.asarray(state[key])
            if value.shape != target.shape:
                raise ValueError(f"state[{key!r}] has shape {value.shape}, expected {target.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"state[{key!r}] contains NaN or Inf")
            target[...] = value

    def set_embedding(self, weights: np.ndarray) -> None:
        if not self.config.uses_tokens:
            raise ValueError("set_embedding: the model takes float inputs, it has no embedding")
        self.load_state_dict({"embedding.weight": weights}, strict=False)

    def num_parameters(self, effective: bool = False) -> int:
        """Number of trainable scalars; ``effective=True`` counts each LSTM (and GRU r/z) bias
        pair ``b_ih + b_hh`` once, giving the classic ``4((I+H)H + H)`` per direction-layer."""
        total = sum(v.size for v in self.params.values())
        if effective:
            total -= sum(
                layer.num_parameters() - layer.num_parameters(True) for layer in self.network.layers
            )
        return int(total)

    # ------------------------------------------------------------- core maths
    def prepare(self, x: Any, y: Any = None, lengths: Any = None) -> SequenceData:
        """Validate inputs (and targets) for this model once; raises before any work."""
        return prepare_data(self.config, x, y, lengths)

    def step_gradients(
        self, batch: SequenceData, rng: np.random.Generator
    ) -> tuple[float, dict[str, np.ndarray], int, float]:
        """A training step's loss, gradients, loss terms (examples, or valid steps for head
        "all") and metric sum (correct predictions, or summed squared error); dropout on."""
        cfg = self.config
        layout = batch.layout()
        outputs, cache = self.network.forward(batch.inputs, layout, training=True, rng=rng)
        loss, d_outputs = compute_loss(cfg, outputs, batch, layout)
        grads = self.network.backward(d_outputs, cache)
        targets = batch.targets if cfg.head == "last" else layout.pack(batch.targets)
        if cfg.task == "classification":
            metric = float((outputs.argmax(axis=1) == targets).sum())
        else:
            predictions = point_predictions(cfg, outputs).astype(np.float64)
            metric = float(np.square(predictions - targets).sum())
        return loss, grads, int(outputs.shape[0]), metric

    def batch_loss_and_grads(
        self, batch: SequenceData, training: bool = True, rng: np.random.Generator | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradients on an already prepared batch (the trainers' inner call)."""
        layout = batch.layout()
        outputs, cache = self.network.forward(batch.inputs, layout, training=training, rng=rng)
        loss, d_outputs = compute_loss(self.config, outputs, batch, layout)
        return loss, self.network.backward(d_outputs, cache)

    def loss_and_grads(
        self,
        x: Any,
        y: Any,
        lengths: Any = None,
        *,
        training: bool = False,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss on one batch and its exact gradient w.r.t. every parameter.

        ``training=True`` applies dropout (with ``rng``); the default is the deterministic
        network, which is what a gradient check wants.
        """
        return self.batch_loss_and_grads(self.prepare(x, y, lengths), training, rng)

    # -------------------------------------------------------------- inference
    def _outputs(self, data: SequenceData, batch_size: int) -> np.ndarray:
        """Head outputs for all of ``data``: ``(n, O)`` or padded ``(n, T, O)`` (NaN padding),
        ``O`` the head's size (``2 * output_size`` for a Gaussian head)."""
        n = len(data)
        per_step = self.config.head == "all"
        size = self.config.head_size
        shape = (n, data.inputs.shape[1], size) if per_step else (n, size)
        result = np.full(shape, np.nan, dtype=self.dtype)
        for start in range(0, n, batch_size):
            index = np.arange(start, min(n, start + batch_size))
            batch = data.take(index)
            layout = batch.layout()
            outputs, _ = self.network.forward(batch.inputs, layout, training=False)
            if per_step:
                result[index, : batch.inputs.shape[1]] = layout.unpack(outputs, fill=np.nan)
            else:
                result[index] = outputs
        return result

    def forward(self, x: Any, lengths: Any = None, batch_size: int = 512) -> np.ndarray:
        """Raw head outputs (logits, regression values, or a Gaussian head's means then
        log-variances); NaN at padded steps for head "all"."""
        return self._outputs(self.prepare(x, lengths=lengths), batch_size)

    def predict_gaussian(
        self, x: Any, lengths: Any = None, batch_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian head's ``(mean, variance)``, each shaped as :meth:`predict`'s output
        would be with ``output_size`` targets (NaN at padded steps); the variance is
        ``e^s`` with ``s`` clipped as the loss clips it."""
        if not self.config.gaussian:
            raise ValueError("predict_gaussian needs a model with regression_loss='gaussian_nll'")
        mean, log_var = split_gaussian(self.forward(x, lengths, batch_size))
        variance = np.exp(log_var)
        if self.config.output_size == 1:
            return mean[..., 0], variance[..., 0]
        return mean, variance

    def predict_proba(self, x: Any, lengths: Any = None, batch_size: int = 512) -> np.ndarray:
        """Class probabilities ``(n, classes)`` or ``(n, T, classes)`` (NaN at padded steps)."""
        if self.config.task != "classification":
            raise ValueError("predict_proba is for classification models; use predict")
        logits = self.forward(x, lengths, batch_size)
        flat = logits.reshape(-1, logits.shape[-1])
        probs = np.full_like(flat, np.nan)
        valid = np.isfinite(flat).all(axis=1)
        probs[valid] = softmax(flat[valid])
        return probs.reshape(logits.shape)

    def predict(self, x: Any, lengths: Any = None, batch_size: int = 512) -> np.ndarray:
        """Class indices (``-1`` at padded steps) or regression values (NaN at padded steps).

        Regression outputs drop their last axis when ``output_size == 1``.
        """
        outputs = point_predictions(self.config, self.forward(x, lengths, batch_size))
        if self.config.task == "classification":
            valid = np.isfinite(outputs).all(axis=-1)
            labels = np.argmax(np.where(np.isfinite(outputs), outputs, -np.inf), axis=-1)
            return np.where(valid, labels, -1)
        return outputs[..., 0] if self.config.output_size == 1 else outputs

    def evaluation_totals(self, data: SequenceData, batch_size: int = 512) -> dict[str, float]:
        """Sums behind :meth:`evaluate_data` (they add up across data shards and Spark workers):
        ``count`` (examples or valid steps), ``loss`` (loss x weight), ``weight`` (count, or
        the class weights' sum), ``correct`` (classification), ``sq`` and ``abs`` (regression,
        of the point predictions), and ``nll`` (a Gaussian head: summed NLL, nats)."""
        if data.targets is None:
            raise ValueError("evaluate needs targets (y)")
        totals = {"count": 0.0, "loss": 0.0, "weight": 0.0, "correct": 0.0, "sq": 0.0, "abs": 0.0}
        classification = self.config.task == "classification"
        if self.config.gaussian:
            totals["nll"] = 0.0
        for start in range(0, len(data), batch_size):
            batch = data.take(np.arange(start, min(len(data), start + batch_size)))
            layout = batch.layout()
            outputs, _ = self.network.forward(batch.inputs, layout, training=False)
            targets = batch.targets if self.config.head == "last" else layout.pack(batch.targets)
            loss, _ = compute_loss(self.config, outputs, batch, layout)
            if classification and self.config.class_weights is not None:
                weight = float(np.asarray(self.config.class_weights)[targets].sum())
            else:
                weight = float(outputs.shape[0])
            totals["loss"] += loss * weight
            totals["weight"] += weight
            if classification:
                totals["correct"] += float((outputs.argmax(axis=1) == targets).sum())
            else:
                diff = point_predictions(self.config, outputs).astype(np.float64) - targets
                totals["sq"] += float((diff * diff).sum())
                totals["abs"] += float(np.abs(diff).sum())
                if self.config.gaussian:
                    terms = gaussian_nll_terms(outputs.astype(np.float64), targets)
                    totals["nll"] += float(terms.sum())
            totals["count"] += outputs.shape[0]
        return totals

    def metrics_from_totals(self, totals: Mapping[str, float]) -> dict[str, float]:
        """Metrics from summed :meth:`evaluation_totals` (see :func:`metrics_from_totals`); a
        Gaussian head's ``loss`` is its mean NLL per target value (what it is trained on)
        and ``mse`` the point predictions' mean squared error."""
        return metrics_from_totals(self.config, totals)

    def evaluate_data(self, data: SequenceData, batch_size: int = 512) -> dict[str, float]:
        """Loss and metrics on prepared data: ``loss`` and ``accuracy`` (classification) or
        ``loss`` (MSE), ``rmse``, ``mae`` (regression), averaged over examples or valid steps."""
        return self.metrics_from_totals(self.evaluation_totals(data, batch_size))

    def evaluate(
        self, x: Any, y: Any, lengths: Any = None, batch_size: int = 512
    ) -> dict[str, float]:
        """Metrics on labelled data (see :meth:`evaluate_data`)."""
        return self.evaluate_data(self.prepare(x, y, lengths), batch_size)

    # ---------------------------------------------------------------- training
    def fit(self, x: Any, y: Any, lengths: Any = None, **options: Any):
        """Train in this process; see :func:`sparklstm.training.fit.fit` for the options.

        Calling ``fit`` again continues training: the optimizer state, the epoch count, the
        data order and dropout streams and the seed carry over, so ``fit(epochs=1)`` twice is
        ``fit(epochs=2)`` bit for bit. They are kept in ``model.fit_state`` (a
        :class:`FitState`, absent before the first ``fit``); ``save``/``load``
        do not carry it, and :meth:`load_state_dict` leaves it as it is. Pass
        ``initial_epoch=0`` to start a new run with a fresh optimizer state instead.

        Returns the :class:`History` (one row per epoch of this call, numbered
        on from the epochs of earlier calls).
        """
        from sparklstm.training.fit import fit

        return fit(self, x, y, lengths, **options)

    def fit_streams(self, inputs: Any, targets: Any, **options: Any):
        """Train on long streams by truncated BPTT with carried state (``head="all"``); see
        :func:`sparklstm.training.streams.fit_streams` for the options."""
        from sparklstm.training.streams import fit_streams

        self._check_stream_loss("fit_streams")
        return fit_streams(self, inputs, targets, **options)

    def evaluate_streams(self, inputs: Any, targets: Any, chunk_length: int = 1000):
        """Metrics on whole streams read chunk by chunk with carried state (the same as one
        pass); see :func:`sparklstm.training.streams.evaluate_streams`."""
        from sparklstm.training.streams import evaluate_streams

        self._check_stream_loss("evaluate_streams")
        return evaluate_streams(self, inputs, targets, chunk_length=chunk_length)

    def _check_stream_loss(self, what: str) -> None:
        if self.config.gaussian:
            raise ValueError(
                f"{what}: truncated BPTT trains with cross-entropy or mean squared error; a "
                "regression_loss='gaussian_nll' model trains with fit (on windows) and reads "
                "streams with stream_outputs"
            )

    def stream_outputs(self, stream: Any, chunk_length: int = 1000) -> np.ndarray:
        """``(steps, O)`` head outputs (``O`` the head's size) of one stream read chunk by
        chunk with carried state: equal (to float rounding) to the outputs of one pass over
        the whole stream, in memory bounded by ``chunk_length`` apart from the result."""
        from sparklstm.model.streams import StreamGroup, check_streams, iter_stream_outputs

        check_streams(self.config, [stream], None)
        group = StreamGroup.of([stream])
        result = np.empty((len(stream), self.config.head_size), dtype=self.dtype)
        for start, _, outputs, layout in iter_stream_outputs(self.network, group, chunk_length):
            result[start + layout.row_time] = outputs
        return result

    # -------------------------------------------------------------- generation
    def generate(
        self,
        prime: Any,
        length: int,
        temperature: float = 1.0,
        rng: np.random.Generator | int | None = None,
    ) -> np.ndarray:
        """Sample ``length`` tokens after ``prime`` from a next-token model.

        Needs a token model (``vocab_size``) with ``head="all"``, ``task="classification"``
        and ``output_size == vocab_size``. ``prime`` is ``(T,)`` or ``(B, T)`` token ids (each
        row the same length); ``temperature`` 0 means greedy (argmax). Returns ``(B, length)``
        (or ``(length,)`` for a 1-D prime).
        """
        cfg = self.config
        if not (cfg.uses_tokens and cfg.head == "all" and cfg.task == "classification"):
            raise ValueError("generate needs a token model with head='all', task='classification'")
        if cfg.output_size != cfg.vocab_size:
            raise ValueError("generate needs output_size == vocab_size (a next-token model)")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be an int >= 1, got {length!r}")
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        prime_arr = np.asarray(prime)
        single = prime_arr.ndim == 1
        data = self.prepare(prime_arr[None] if single else prime_arr)
        ids = data.inputs
        states = None
        logits = None
        for t in range(ids.shape[1]):
            logits, states = self.network.step_tokens(ids[:, t], states)
        samples = np.empty((ids.shape[0], length), dtype=np.int64)
        for step in range(length):
            if temperature == 0:
                token = logits.argmax(axis=1)
            else:
                probs = softmax(logits.astype(np.float64) / temperature)
                cumulative = probs.cumsum(axis=1)
                draws = rng.random((probs.shape[0], 1)) * cumulative[:, -1:]
                token = (cumulative < draws).sum(axis=1)
            samples[:, step] = token
            logits, states = self.network.step_tokens(token, states)
        return samples[0] if single else samples

    sample = generate

    # ------------------------------------------------------------- persistence
    def __repr__(self) -> str:
        cfg = self.config
        source = (
            f"vocab_size={cfg.vocab_size}" if cfg.uses_tokens else f"input_size={cfg.input_size}"
        )
        return (
            f"SequenceModel({source}, cell={cfg.cell!r}, hidden_sizes={list(cfg.hidden_sizes)}, "
            f"bidirectional={cfg.bidirectional}, head={cfg.head!r}, task={cfg.task!r}, "
            f"output_size={cfg.output_size}, params={self.num_parameters()})"
        )
