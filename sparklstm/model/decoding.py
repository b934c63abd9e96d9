"""Decoding a trained encoder-decoder: greedy and beam search for tokens, recursive forecasting
for real-valued outputs. All of them run the decoder one step at a time for the whole batch
(beam search: for every row's ``beam_width`` hypotheses at once), starting from the bridged
encoder states, exactly as in training (:meth:`Seq2SeqNetwork.decode_step`).

Beam search keeps, for every source row, the ``beam_width`` highest-scoring hypotheses by
summed token log-probability; a hypothesis that has written ``<end>`` is finished and carried
unchanged. The returned hypothesis is the one with the best length-normalised score
``log p / lp(n)``, ``lp(n) = ((5 + n) / 6) ** length_penalty`` (Wu et al. 2016), where ``n``
counts the tokens written, ``<end>`` included; ``length_penalty = 0`` compares raw
log-probabilities. With ``beam_width = 1`` it is greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparklstm.model.seq2seq_network import Seq2SeqNetwork
from sparklstm.nn.losses import log_softmax
from sparklstm.options import check_fields, integer, real
from sparklstm.validation import check_positive_int

__all__ = [
    "DecodeOptions",
    "Decoded",
    "beam_search",
    "decode",
    "greedy_decode",
    "recursive_forecast",
]


@dataclass(frozen=True)
class DecodeOptions:
    """How a trained encoder-decoder writes its output: the one definition of the decoding
    options of :func:`decode`, :func:`sparklstm.spark.decoding.decode_dataframe`, the
    ``LSTMSeq2SeqModel`` Params (``beamWidth``, ``maxLength``, ...) and the jobs' flags."""

    beam_width: int = integer(
        1, "token targets: hypotheses kept per row in beam search (1: greedy decoding)"
    )
    max_len: int = integer(
        50,
        "token targets: most tokens written per row, <end> included",
        param="maxLength",
        flag="--max-length",
    )
    length_penalty: float = real(
        0.6,
        "token targets: beam search ranks hypotheses by log p / ((5 + n) / 6) ** length_penalty "
        "(0: raw log-probability)",
        minimum=0.0,
    )
    horizon: int | None = integer(
        None, "real-valued targets: steps to forecast (required for them)", optional=True
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def for_model(self, config: Any) -> DecodeOptions:
        """These options, checked against a model's configuration (a real-valued model needs
        a ``horizon``)."""
        if not config.token_target and self.horizon is None:
            raise ValueError(
                "horizon (the steps to forecast) is needed for a model with real-valued targets"
            )
        return self


def decode(
    network: Seq2SeqNetwork, source: np.ndarray, lengths: np.ndarray, options: DecodeOptions
) -> Decoded | np.ndarray:
    """What ``options`` ask of ``network``: :class:`Decoded` tokens (greedy for
    ``beam_width`` 1, else beam search), or the ``(B, horizon, O)`` recursive forecast of a
    real-valued model."""
    options.for_model(network.config)
    if not network.config.token_target:
        return recursive_forecast(network, source, lengths, options.horizon)
    if options.beam_width == 1:
        return greedy_decode(network, source, lengths, options.max_len)
    return beam_search(
        network, source, lengths, options.beam_width, options.max_len, options.length_penalty
    )


@dataclass(frozen=True)
class Decoded:
    """Decoded token sequences (``<end>`` not included), their total log-probability (with the
    ``<end>`` token's, when written), and the attention weights of every written step
    (``(steps, source_time)`` per row; ``None`` without attention)."""

    sequences: list[np.ndarray]
    log_probs: np.ndarray
    attention: list[np.ndarray] | None


def _check(network: Seq2SeqNetwork, max_len: int) -> None:
    if not network.config.token_target:
        raise ValueError("greedy and beam search decode token targets; use recursive_forecast")
    check_positive_int("max_len", max_len)


def _start(network: Seq2SeqNetwork, source: np.ndarray, lengths: np.ndarray):
    memory, encoder = network.encode(source, lengths)
    mask = np.arange(memory.shape[1])[None, :] < lengths[:, None]
    bridged_h, bridged_c = network.bridge(encoder)
    return memory, mask, list(zip(bridged_h, bridged_c, strict=True))


def greedy_decode(
    network: Seq2SeqNetwork, source: np.ndarray, lengths: np.ndarray, max_len: int
) -> Decoded:
    """The most likely token at every step, until ``<end>`` or ``max_len`` tokens."""
    _check(network, max_len)
    cfg = network.config
    memory, mask, states = _start(network, source, lengths)
    batch = source.shape[0]
    inputs = np.full(batch, cfg.start_token, dtype=np.int64)
    written = np.zeros((batch, max_len), dtype=np.int64)
    log_probs = np.zeros(batch)
    finished = np.zeros(batch, dtype=bool)
    steps = np.zeros(batch, dtype=np.int64)  # tokens written before <end>
    weights_seen = []
    for step in range(max_len):
        outputs, states, weights = network.decode_step(inputs, states, memory, mask)
        scores = log_softmax(outputs.astype(np.float64))
        chosen = scores.argmax(axis=1)
        active = ~finished
        log_probs[active] += scores[active, chosen[active]]
        written[:, step] = chosen
        weights_seen.append(weights)
        ended = active & (chosen == cfg.end_token)
        steps[active & ~ended] += 1
        finished |= ended
        if finished.all():
            break
        inputs = chosen
    sequences = [written[i, : steps[i]] for i in range(batch)]
    attention = None
    if weights_seen[0] is not None:
        stacked = np.stack(weights_seen, axis=1)  # (B, steps, S)
        ended_at = np.minimum(steps + finished, stacked.shape[1])
        attention = [stacked[i, : ended_at[i], : lengths[i]] for i in range(batch)]
    return Decoded(sequences, log_probs, attention)


def _length_penalty(tokens: np.ndarray, alpha: float) -> np.ndarray:
    return ((5.0 + tokens) / 6.0) ** alpha


def beam_search(
    network: Seq2SeqNetwork,
    source: np.ndarray,
    lengths: np.ndarray,
    beam_width: int = 4,
    max_len: int = 50,
    length_penalty: float = 0.6,
) -> Decoded:
    """The best of ``beam_width`` hypotheses per row (see the module docstring)."""
    _check(network, max_len)
    check_positive_int("beam_width", beam_width)
    if not np.isfinite(length_penalty) or length_penalty < 0:
        raise ValueError(f"length_penalty must be >= 0, got {length_penalty}")
    cfg = network.config
    batch, width = source.shape[0], int(beam_width)
    memory, mask, states = _start(network, source, lengths)
    # Every row's hypotheses side by side: row b, beam k is flat index b * width + k.
    memory = np.repeat(memory, width, axis=0)
    mask = np.repeat(mask, width, axis=0)
    states = [
        (np.repeat(h, width, axis=1), None if c is None else np.repeat(c, width, axis=1))
        for h, c in states
    ]
    scores = np.full((batch, width), -np.inf)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    finished = np.zeros((batch, width), dtype=bool)
    tokens = np.zeros((batch, width), dtype=np.int64)  # tokens written, <end> included
    history = np.zeros((batch, width, 0), dtype=np.int64)
    attention = None
    inputs = np.full(batch * width, cfg.start_token, dtype=np.int64)
    for _ in range(max_len):
        outputs, states, weights = network.decode_step(inputs, states, memory, mask)
        step_scores = log_softmax(outputs.astype(np.float64)).reshape(batch, width, -1)
        vocab = step_scores.shape[2]
        candidates = scores[:, :, None] + step_scores
        # A finished hypothesis continues only as itself (its <end> slot, score unchanged).
        candidates[finished] = -np.inf
        candidates[finished, cfg.end_token] = scores[finished]
        flat = candidates.reshape(batch, width * vocab)
        best = np.argsort(-flat, axis=1, kind="stable")[:, :width]
        parents, chosen = best // vocab, best % vocab
        rows = np.arange(batch)[:, None]
        was_finished = finished[rows, parents]
        scores = flat[rows, best]
        tokens = tokens[rows, parents] + (~was_finished)
        finished = was_finished | (chosen == cfg.end_token)
        history = np.concatenate([history[rows, parents], chosen[:, :, None]], axis=2)
        flat_parents = (rows * width + parents).reshape(-1)
        states = [
            (h[:, flat_parents], None if c is None else c[:, flat_parents]) for h, c in states
        ]
        if weights is not None:
            weights = weights.reshape(batch, width, 1, -1)
            attention = (
                weights[rows, parents]
                if attention is None
                else np.concatenate([attention[rows, parents], weights[rows, parents]], axis=2)
            )
        if finished.all():
            break
        inputs = chosen.reshape(-1)
    normalised = np.where(
        np.isfinite(scores), scores / _length_penalty(tokens, length_penalty), -np.inf
    )
    pick = normalised.argmax(axis=1)
    sequences, log_probs, maps = [], np.zeros(batch), []
    for b in range(batch):
        k = pick[b]
        written = history[b, k]
        ends = np.flatnonzero(written == cfg.end_token)
        stop = int(ends[0]) if ends.size else written.size
        sequences.append(written[:stop])
        log_probs[b] = scores[b, k]
        if attention is not None:
            maps.append(attention[b, k, : min(stop + 1, written.size), : lengths[b]])
    return Decoded(sequences, log_probs, maps if attention is not None else None)


def recursive_forecast(
    network: Seq2SeqNetwork, source: np.ndarray, lengths: np.ndarray, horizon: int
) -> np.ndarray:
    """``(B, horizon, O)``: each predicted step is the decoder's next input."""
    if network.config.token_target:
        raise ValueError("recursive_forecast is for real-valued targets; use greedy/beam search")
    check_positive_int("horizon", horizon)
    memory, mask, states = _start(network, source, lengths)
    batch = source.shape[0]
    inputs = np.broadcast_to(network.params["decoder.start"], (batch, network.config.output_size))
    predicted = []
    for _ in range(horizon):
        outputs, states, _ = network.decode_step(inputs, states, memory, mask)
        predicted.append(outputs)
        inputs = outputs
    return np.stack(predicted, axis=1)
