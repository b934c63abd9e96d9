"""Sequence-to-sequence models: an encoder-decoder whose output is a sequence of its own length.

``Seq2SeqModel`` is the thin class around :class:`~sparklstm.model.seq2seq_network.Seq2SeqNetwork`
(the layers) and :mod:`sparklstm.model.decoding` (greedy, beam search, recursive forecasting):
data preparation, the masked loss, training, evaluation and the model file.

Teacher forcing. For token targets ``y_1..y_n`` (no start or end token in the data), the
decoder reads ``<start>, y_1, ..., y_n`` and is trained to write ``y_1, ..., y_n, <end>``
(``n + 1`` steps). For real-valued targets ``y_1..y_n`` (forecasting), it reads
``decoder.start, y_1, ..., y_{n-1}`` and writes ``y_1..y_n``. The loss is the mean over the
valid target steps of the whole batch (cross-entropy per token, or squared error per value), so
padding on either side changes nothing.

Scheduled sampling (``sampling_rate`` p > 0), in its parallel form (Duckworth et al. 2019): a
first teacher-forced pass gives the model's own prediction at every step (the most likely token,
or the predicted values); then each decoder input after the first is replaced, with probability
p, by the model's prediction for the step before, and the loss and gradients are those of a
teacher-forced pass on these mixed inputs. As in Bengio et al. (2015), no gradient flows
through the choice or the substituted inputs (they are held fixed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparklstm.data.padding import pad_sequences
from sparklstm.data.pair_data import PairData
from sparklstm.model.files import ModelFile
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.model.seq2seq_network import Seq2SeqNetwork
from sparklstm.nn.losses import mean_squared_error, softmax_cross_entropy

__all__ = [
    "Seq2SeqModel",
    "SEQ2SEQ_KIND",
    "forecast_steps",
    "padded_side",
    "per_step_metrics",
    "seq2seq_metrics",
]

logger = logging.getLogger(__name__)

SEQ2SEQ_KIND = "seq2seq"
FORMAT_VERSION = 1


class Seq2SeqModel(ModelFile):
    """An encoder-decoder model (see the module docstring and :class:`Seq2SeqConfig`).

    >>> model = Seq2SeqModel(source_vocab_size=14, target_vocab_size=14, hidden_sizes=[32])
    >>> history = model.fit(sources, targets, epochs=20, lr=0.01)  # doctest: +SKIP
    >>> model.beam_search(sources[:3], beam_width=4)  # doctest: +SKIP
    """

    file_kind = SEQ2SEQ_KIND
    file_version = FORMAT_VERSION
    file_what = "seq2seq model"

    def __init__(self, **config: Any) -> None:
        self.config = Seq2SeqConfig.from_dict(config)  # head="seq2seq" may be given
        self.network = Seq2SeqNetwork(self.config)
        self.metadata: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: Seq2SeqConfig | Mapping[str, Any]) -> Seq2SeqModel:
        data = config.to_dict() if isinstance(config, Seq2SeqConfig) else dict(config)
        return cls(**data)

    @property
    def params(self) -> dict[str, np.ndarray]:
        return self.network.params

    @property
    def dtype(self) -> np.dtype:
        return self.network.dtype

    def state_dict(self) -> dict[str, np.ndarray]:
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy ``state`` into the parameters; every name and shape must match exactly."""
        missing = sorted(set(self.params) - set(state))
        unexpected = sorted(set(state) - set(self.params))
        if missing or unexpected:
            raise ValueError(
                f"state_dict mismatch: missing {missing or 'none'}, unexpected "
                f"{unexpected or 'none'}"
            )
        for name, target in self.params.items():
            value = np.asarray(state[name], dtype=self.dtype)
            if value.shape != target.shape:
                raise ValueError(f"{name} has shape {value.shape}, expected {target.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name} holds NaN or Inf")
            target[...] = value

    def num_parameters(self) -> int:
        return int(sum(value.size for value in self.params.values()))

    # ------------------------------------------------------------------------ data
    def prepare_source(self, source: Any, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Padded source and its lengths from a list of sequences or a padded array."""
        cfg = self.config
        return padded_side(
            "source", source, lengths, cfg.source_vocab_size, cfg.input_size, self.dtype
        )

    def prepare_targets(self, targets: Any, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Padded targets and lengths (token ids ``(B, T)`` or values ``(B, T, O)``)."""
        cfg = self.config
        return padded_side(
            "target", targets, lengths, cfg.target_vocab_size, cfg.output_size, self.dtype
        )

    def teacher_forcing(
        self, targets: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(decoder inputs, decoder targets, decoder lengths)`` for padded ``targets``."""
        cfg = self.config
        batch = targets.shape[0]
        if cfg.token_target:
            steps = targets.shape[1] + 1
            inputs = np.zeros((batch, steps), dtype=np.int64)
            inputs[:, 0] = cfg.start_token
            inputs[:, 1:] = targets
            outputs = np.zeros((batch, steps), dtype=np.int64)
            outputs[:, :-1] = targets
            outputs[np.arange(batch), lengths] = cfg.end_token
            return inputs, outputs, lengths + 1
        inputs = np.zeros_like(targets)
        inputs[:, 1:] = targets[:, :-1]  # step 0 becomes decoder.start in the network
        return inputs, targets, lengths

    # ------------------------------------------------------------------------ loss
    def _loss(self, outputs: np.ndarray, packed_targets: np.ndarray) -> tuple[float, np.ndarray]:
        if self.config.token_target:
            return softmax_cross_entropy(outputs, packed_targets)
        return mean_squared_error(outputs, packed_targets)

    def loss_and_grads(
        self,
        source: np.ndarray,
        source_lengths: np.ndarray,
        targets: np.ndarray,
        target_lengths: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss over the valid target steps and its gradient, for prepared arrays (see
        :meth:`prepare`); with ``sampling_rate`` > 0 in the config, ``rng`` draws the
        scheduled sampling."""
        batch = PairData(source, source_lengths, targets, target_lengths)
        if self.config.sampling_rate > 0 and rng is None:
            raise ValueError("scheduled sampling (sampling_rate > 0) needs rng")
        loss, grads, _, _ = self.step_gradients(batch, rng)
        return loss, grads

    def _sampled_inputs(
        self,
        source: np.ndarray,
        source_lengths: np.ndarray,
        inputs: np.ndarray,
        lengths: np.ndarray,
        rate: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Decoder inputs with each step after the first replaced, with probability ``rate``,
        by the model's own prediction for the step before (from a teacher-forced pass)."""
        predicted, cache = self.network.forward(source, source_lengths, inputs, lengths)
        own = cache.layout.unpack(predicted)  # (B, T, V or O), zero at padded steps
        if self.config.token_target:
            own = own.argmax(axis=2)
        replace = rng.random(inputs.shape[:2]) < rate
        replace[:, 0] = False
        mixed = inputs.copy()
        mixed[:, 1:][replace[:, 1:]] = own[:, :-1][replace[:, 1:]]
        return mixed

    # -------------------------------------------------------------------- training
    def prepare(self, source: Any, targets: Any, lengths: Any = None) -> PairData:
        """Validate a set of pairs once; ``lengths`` is ``(source_lengths, target_lengths)``
        (either may be None) for padded arrays."""
        source_lengths, target_lengths = (None, None) if lengths is None else lengths
        src, src_len = self.prepare_source(source, source_lengths)
        tgt, tgt_len = self.prepare_targets(targets, target_lengths)
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
        return PairData(src, src_len, tgt, tgt_len)

    def step_gradients(
        self, batch: PairData, rng: np.random.Generator
    ) -> tuple[float, dict[str, np.ndarray], int, float]:
        """A training step (see :class:`sparklstm.training.step.TrainableModel`): the mean
        loss over the batch's valid target steps, its gradients (scheduled sampling at the
        config's ``sampling_rate``, drawn from ``rng``), the number of those steps, and the
        teacher-forced correct tokens or summed squared error."""
        inputs, outputs, lengths = self.teacher_forcing(batch.targets, batch.target_lengths)
        rate = self.config.sampling_rate
        if rate > 0:
            inputs = self._sampled_inputs(
                batch.source, batch.source_lengths, inputs, lengths, rate, rng
            )
        predicted, cache = self.network.forward(batch.source, batch.source_lengths, inputs, lengths)
        wanted = cache.layout.pack(outputs)
        loss, d_outputs = self._loss(predicted, wanted)
        grads = self.network.backward(d_outputs.astype(self.dtype, copy=False), cache)
        if self.config.token_target:
            metric = float((predicted.argmax(axis=1) == wanted).sum())
        else:
            metric = float(np.square(predicted.astype(np.float64) - wanted).sum())
        return loss, grads, int(predicted.shape[0]), metric

    def fit(self, source: Any, targets: Any, lengths: Any = None, **options: Any):
        """Train on one machine with the shared trainer (:func:`sparklstm.training.fit.fit`):
        the same options as :meth:`SequenceModel.fit` (epochs, batch_size, optimizer, lr,
        schedule, clipping, early stopping, validation as ``(source, targets)`` or
        ``(source, targets, (source_lengths, target_lengths))``, ...), minibatches bucketed by
        source length; a later call continues the run. Returns the :class:`History`."""
        from sparklstm.training.fit import fit

        return fit(self, source, targets, lengths, **options)

    # ------------------------------------------------------------------ evaluation
    def evaluation_totals(self, data: PairData, batch_size: int = 512) -> dict[str, float]:
        """Sums over ``data`` (so that partitions' totals add up): the teacher-forced loss
        and its terms, and for decoding, exactly right sequences and correct tokens of greedy
        decoding (tokens) or the errors of recursive forecasts (values): squared (``sq``),
        absolute (``abs``) and, over the non-zero target values, absolute percentage
        (``ape``, ``nonzero``), in all and per horizon step ``k`` (``sq_step_k``, ...,
        ``values_step_k``; step ``k`` counts the rows whose target has at least ``k``
        steps)."""
        from sparklstm.model import decoding

        totals = dict.fromkeys(("loss", "count", "rows", "exact", "correct", "tokens"), 0.0)
        if not self.config.token_target:
            totals.update(dict.fromkeys(("sq", "abs", "ape", "nonzero", "values"), 0.0))
        for start in range(0, len(data), batch_size):
            part = data.take(np.arange(start, min(start + batch_size, len(data))))
            inputs, outputs, lengths = self.teacher_forcing(part.targets, part.target_lengths)
            predicted, cache = self.network.forward(
                part.source, part.source_lengths, inputs, lengths
            )
            loss, _ = self._loss(predicted, cache.layout.pack(outputs))
            totals["loss"] += loss * predicted.shape[0]
            totals["count"] += predicted.shape[0]
            totals["rows"] += len(part)
            longest = int(part.target_lengths.max())
            if self.config.token_target:
                decoded = decoding.greedy_decode(
                    self.network, part.source, part.source_lengths, longest + 1
                )
                for i, sequence in enumerate(decoded.sequences):
                    wanted = part.targets[i, : part.target_lengths[i]]
                    totals["exact"] += float(np.array_equal(sequence, wanted))
                    shared = min(len(sequence), len(wanted))
                    totals["correct"] += float(np.sum(sequence[:shared] == wanted[:shared]))
                totals["tokens"] += float(part.target_lengths.sum())
            else:
                forecast = decoding.recursive_forecast(
                    self.network, part.source, part.source_lengths, longest
                )
                valid = np.arange(longest)[None, :] < part.target_lengths[:, None]
                wanted = part.targets.astype(np.float64)
                error = forecast.astype(np.float64) - wanted  # (B, steps, O)
                for key, value in _forecast_error_sums(error[valid], wanted[valid]).items():
                    totals[key] += value
                for step in range(longest):
                    rows = valid[:, step]
                    sums = _forecast_error_sums(error[rows, step], wanted[rows, step])
                    for key, value in sums.items():
                        name = f"{key}_step_{step + 1}"
                        totals[name] = totals.get(name, 0.0) + value
        return totals

    def metrics_from_totals(self, totals: Mapping[str, float]) -> dict[str, float]:
        """See :func:`seq2seq_metrics`."""
        return seq2seq_metrics(self.config, totals)

    def evaluate_data(self, data: PairData, batch_size: int = 512) -> dict[str, float]:
        return self.metrics_from_totals(self.evaluation_totals(data, batch_size))

    def evaluate(
        self, source: Any, targets: Any, lengths: Any = None, batch_size: int = 512
    ) -> dict[str, float]:
        """Teacher-forced loss, plus what decoding gets right: exact-sequence and token
        accuracy of greedy decoding (tokens), or RMSE and MAE of recursive forecasts."""
        return self.evaluate_data(self.prepare(source, targets, lengths), batch_size)

    # -------------------------------------------------------------------- decoding
    def greedy_decode(self, source: Any, source_lengths: Any = None, max_len: int = 50):
        """Most likely token at each step (see :func:`sparklstm.model.decoding.greedy_decode`)."""
        from sparklstm.model import decoding

        src, src_len = self.prepare_source(source, source_lengths)
        return decoding.greedy_decode(self.network, src, src_len, max_len)

    def beam_search(
        self,
        source: Any,
        source_lengths: Any = None,
        beam_width: int = 4,
        max_len: int = 50,
        length_penalty: float = 0.6,
    ):
        """Beam search (see :func:`sparklstm.model.decoding.beam_search`)."""
        from sparklstm.model import decoding

        src, src_len = self.prepare_source(source, source_lengths)
        return decoding.beam_search(self.network, src, src_len, beam_width, max_len, length_penalty)

    def forecast(self, source: Any, horizon: int, source_lengths: Any = None) -> np.ndarray:
        """``(B, horizon, O)`` values, each step fed back as the next input."""
        from sparklstm.model import decoding

        src, src_len = self.prepare_source(source, source_lengths)
        return decoding.recursive_forecast(self.network, src, src_len, horizon)

    # ----------------------------------------------------------------- persistence
    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"Seq2SeqModel(cell={cfg.cell!r}, hidden_sizes={list(cfg.hidden_sizes)}, "
            f"bidirectional={cfg.bidirectional}, attention={cfg.attention!r}, "
            f"params={self.num_parameters()})"
        )


def padded_side(
    side: str,
    values: Any,
    lengths: Any,
    vocab_size: int | None,
    width: int | None,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """One side of the pairs as ``(padded, lengths)``: token ids ``(B, T)`` in
    ``[0, vocab_size)`` when ``vocab_size`` is set, else values ``(B, T, width)``; from a
    list of sequences or a padded array (all of its steps valid unless ``lengths`` says)."""
    tokens = vocab_size is not None
    if isinstance(values, np.ndarray) and values.dtype != object:
        padded = values
        lengths = (
            np.full(len(values), values.shape[1], dtype=np.int64)
            if lengths is None
            else np.asarray(lengths, dtype=np.int64)
        )
    else:
        padded, lengths = pad_sequences(list(values), dtype=np.int64 if tokens else dtype)
    if tokens:
        padded = np.asarray(padded, dtype=np.int64)
        if padded.ndim != 2:
            raise ValueError(f"{side} token ids must be (batch, time), got {padded.shape}")
        ids = padded[np.arange(padded.shape[1])[None, :] < lengths[:, None]]
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            raise ValueError(f"{side} token ids must lie in [0, {side}_vocab_size={vocab_size})")
    else:
        padded = np.asarray(padded, dtype=dtype)
        if padded.ndim == 2 and width == 1:
            padded = padded[..., None]
        if padded.ndim != 3 or padded.shape[2] != width:
            size = "input_size" if side == "source" else "output_size"
            raise ValueError(
                f"{side} values must be (batch, time, {size}={width}), got {padded.shape}"
            )
    if lengths.shape != (len(padded),) or lengths.min() < 1 or lengths.max() > padded.shape[1]:
        raise ValueError(f"{side} lengths must be one per row, in [1, {padded.shape[1]}]")
    return padded, lengths


def _forecast_error_sums(error: np.ndarray, wanted: np.ndarray) -> dict[str, float]:
    """Sums of forecast ``error`` (forecast - target) against the ``wanted`` values: squared,
    absolute, absolute percentage ``|e| / |y|`` over the non-zero targets and their count, and
    the count of values."""
    nonzero = wanted != 0
    return {
        "sq": float(np.sum(error**2)),
        "abs": float(np.sum(np.abs(error))),
        "ape": float(np.sum(np.abs(error[nonzero]) / np.abs(wanted[nonzero]))),
        "nonzero": float(np.count_nonzero(nonzero)),
        "values": float(error.size),
    }


def _error_metrics(totals: Mapping[str, float], suffix: str = "") -> dict[str, float]:
    """``rmse``, ``mae`` and ``mape`` (percent, over the non-zero target values; left out
    when there are none) of the forecast error sums whose keys end in ``suffix``."""
    values = max(totals.get("values" + suffix, 0.0), 1.0)
    metrics = {
        "rmse" + suffix: float(np.sqrt(totals.get("sq" + suffix, 0.0) / values)),
        "mae" + suffix: totals.get("abs" + suffix, 0.0) / values,
    }
    if totals.get("nonzero" + suffix, 0.0) > 0:
        metrics["mape" + suffix] = 100.0 * totals["ape" + suffix] / totals["nonzero" + suffix]
    return metrics


def forecast_steps(totals: Mapping[str, float]) -> int:
    """How many horizon steps summed forecast totals hold (the longest target's length)."""
    steps = 0
    while f"values_step_{steps + 1}" in totals:
        steps += 1
    return steps


def seq2seq_metrics(config: Seq2SeqConfig, totals: Mapping[str, float]) -> dict[str, float]:
    """Metrics from summed :meth:`Seq2SeqModel.evaluation_totals`: ``loss`` (teacher-forced),
    then ``sequence_accuracy`` and ``token_accuracy`` (tokens; a decoded token counts where it
    equals the target's at the same position), or ``rmse``, ``mae`` and ``mape`` of the
    recursive forecasts over all target values, then the same for each horizon step ``k``
    (``rmse_step_k``, ``mae_step_k``, ``mape_step_k``: over the rows whose target has a step
    ``k``). MAPE is in percent, over the non-zero target values (left out without any), as in
    :func:`sparklstm.metrics.regression_report`::

        rmse = sqrt(sum e^2 / n)    mae = sum |e| / n
        mape = 100 / n_{y != 0} * sum_{y != 0} |e| / |y|
    """
    metrics = {"loss": totals.get("loss", 0.0) / max(totals.get("count", 0.0), 1.0)}
    if config.token_target:
        metrics["sequence_accuracy"] = totals.get("exact", 0.0) / max(totals.get("rows", 0.0), 1.0)
        metrics["token_accuracy"] = totals.get("correct", 0.0) / max(totals.get("tokens", 0.0), 1.0)
        return metrics
    metrics.update(_error_metrics(totals))
    for step in range(1, forecast_steps(totals) + 1):
        metrics.update(_error_metrics(totals, f"_step_{step}"))
    return metrics


def per_step_metrics(metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """The per-step entries of a forecaster's :func:`seq2seq_metrics` as one record per
    horizon step: ``[{"step": 1, "rmse": ..., "mae": ..., "mape": ...}, ...]`` (``mape`` None
    where the step has no non-zero target value)."""
    records = []
    step = 1
    while f"rmse_step_{step}" in metrics:
        record: dict[str, Any] = {"step": step}
        for name in ("rmse", "mae", "mape"):
            record[name] = metrics.get(f"{name}_step_{step}")
        records.append(record)
        step += 1
    return records
