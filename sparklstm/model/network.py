"""The network: (embedding) -> stacked recurrent layers -> dense head -> loss, on packed rows.

:class:`Network` holds the parameters in one flat ``dict`` (``"embedding.weight"``,
``"rnn.weight_ih_l0"``, ..., ``"head.weight"``, ``"head.bias"``) whose arrays are shared with the
layer objects, so an optimizer updating ``params`` in place updates the network. The recurrent
names follow ``torch.nn.LSTM``/``GRU`` under the ``rnn.`` prefix; the head follows
``torch.nn.Linear``; the embedding ``torch.nn.Embedding``.

``forward`` returns its outputs and a cache; ``backward(d_outputs, cache)`` is a function of its
arguments only, so it may be called in any order relative to other forwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparklstm.model.config import ModelConfig
from sparklstm.nn.init import xavier_uniform
from sparklstm.nn.layers import (
    dense_backward,
    dense_forward,
    dropout_mask,
    embedding_backward,
    embedding_forward,
)
from sparklstm.nn.packing import PackedLayout
from sparklstm.nn.recurrent import RecurrentStack, StackCache, make_stack

__all__ = ["Network", "NetworkCache"]


@dataclass(frozen=True, eq=False)
class NetworkCache:
    layout: PackedLayout
    token_ids: np.ndarray | None  # (N,) packed ids when inputs are tokens
    layer_caches: list[StackCache]
    dropout_masks: list[np.ndarray | None]  # mask on the input of layer k (None for k = 0)
    features: np.ndarray  # input of the head: (B, F) for head "last", (N, F) for "all"
    top_rows: int  # N, rows of the top recurrent output
    # Per layer (h_n, c_n), each (directions, B, H) in batch order (c_n None for GRU): the
    # state after each row's last valid step, where a stream's next chunk starts.
    final_states: list[tuple[np.ndarray, np.ndarray | None]] | None = None


class Network:
    """The layers of a :class:`~sparklstm.model.SequenceModel`, without data handling."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        dtype = np.dtype(config.dtype)
        self.dtype = dtype
        rng = np.random.default_rng(config.seed)
        self.params: dict[str, np.ndarray] = {}
        if config.uses_tokens:
            self.params["embedding.weight"] = (
                rng.standard_normal((config.vocab_size, config.embedding_dim)) * 0.1
            ).astype(dtype)
            layer_input = config.embedding_dim
        else:
            layer_input = config.input_size
        self.layers: list[RecurrentStack] = []
        for k, hidden in enumerate(config.hidden_sizes):
            layer_rng = np.random.default_rng(rng.integers(2**63))
            layer = make_stack(
                config.cell,
                layer_input,
                hidden,
                bidirectional=config.bidirectional,
                forget_bias=config.forget_bias,
                dtype=dtype,
                rng=layer_rng,
            )
            for name, value in layer.params.items():
                self.params[self._rnn_name(name, k)] = value
            self.layers.append(layer)
            layer_input = layer.output_size
        self.feature_size = layer_input
        # head_size: output_size, or 2 x output_size (mean, log-variance) for a Gaussian head.
        self.params["head.weight"] = xavier_uniform(rng, (config.head_size, layer_input), dtype)
        self.params["head.bias"] = np.zeros(config.head_size, dtype=dtype)

    @staticmethod
    def _rnn_name(layer_key: str, layer_index: int) -> str:
        # A one-layer stack names its weights "..._l0[_reverse]"; the model renumbers them.
        return "rnn." + layer_key.replace("_l0", f"_l{layer_index}", 1)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        inputs: np.ndarray,
        layout: PackedLayout,
        training: bool = False,
        rng: np.random.Generator | None = None,
        states: list[tuple[np.ndarray, np.ndarray | None]] | None = None,
    ) -> tuple[np.ndarray, NetworkCache]:
        """Outputs of the head (logits or predictions) and the cache.

        ``inputs`` are padded ``[B, T, I]`` floats or ``[B, T]`` token ids (already validated).
        Returns ``(B, O)`` for head ``"last"``, packed ``(N, O)`` for head ``"all"``.
        ``states`` are the layers' initial states, per layer ``(h0, c0)`` of shape
        ``(directions, B, H)`` in batch order (``c0`` None for GRU), default zeros; the cache's
        ``final_states`` has the same form. The gradient stops at the initial states (truncated
        BPTT: :mod:`sparklstm.training.streams`).
        """
        cfg = self.config
        if training and cfg.dropout > 0 and rng is None:
            raise ValueError("training with dropout needs rng (a numpy.random.Generator)")
        token_ids = None
        if cfg.uses_tokens:
            token_ids = layout.pack(inputs)
            hidden = embedding_forward(self.params["embedding.weight"], token_ids)
        else:
            hidden = layout.pack(inputs)
        caches, masks, finals = [], [], []
        order, inverse = layout.order, layout.inverse_order
        for k, layer in enumerate(self.layers):
            mask = None
            if k > 0 and training and cfg.dropout > 0:
                mask = dropout_mask(rng, hidden.shape, cfg.dropout, self.dtype)
                hidden = hidden * mask
            h0 = c0 = None
            if states is not None:
                h0, c0 = states[k]
                h0 = h0[:, order]
                c0 = None if c0 is None else c0[:, order]
            hidden, h_n, c_n, cache = layer.forward_packed(hidden, layout, h0, c0, training=False)
            finals.append((h_n[:, inverse], None if c_n is None else c_n[:, inverse]))
            caches.append(cache)
            masks.append(mask)
        if cfg.head == "last":
            features = self._final_features(hidden, layout)
        else:
            features = hidden
        outputs = dense_forward(self.params["head.weight"], self.params["head.bias"], features)
        cache = NetworkCache(layout, token_ids, caches, masks, features, hidden.shape[0], finals)
        return outputs, cache

    def _final_features(self, top: np.ndarray, layout: PackedLayout) -> np.ndarray:
        """``(B, D*H)``: forward direction at the last valid step, reverse at the first."""
        if not self.config.bidirectional:
            return top[layout.last_rows()]
        H = self.layers[-1].hidden_size
        return np.concatenate([top[layout.last_rows(), :H], top[layout.first_rows(), H:]], axis=1)

    # ----------------------------------------------------------------- backward
    def backward(self, d_outputs: np.ndarray, cache: NetworkCache) -> dict[str, np.ndarray]:
        """Gradients of every parameter, given the gradient w.r.t. the head's outputs."""
        cfg = self.config
        grads: dict[str, np.ndarray] = {}
        d_features, grads["head.weight"], grads["head.bias"] = dense_backward(
            d_outputs, self.params["head.weight"], cache.features
        )
        layout = cache.layout
        if cfg.head == "last":
            d_hidden = np.zeros((cache.top_rows, self.feature_size), dtype=self.dtype)
            if cfg.bidirectional:
                H = self.layers[-1].hidden_size
                d_hidden[layout.last_rows(), :H] = d_features[:, :H]
                d_hidden[layout.first_rows(), H:] = d_features[:, H:]
            else:
                d_hidden[layout.last_rows()] = d_features
        else:
            d_hidden = d_features
        for k in range(len(self.layers) - 1, -1, -1):
            # The first layer's input gradient is wanted only to reach an embedding.
            d_hidden, layer_grads, _, _ = self.layers[k].backward_packed(
                d_hidden, cache.layer_caches[k], need_input_grad=k > 0 or cfg.uses_tokens
            )
            for name, value in layer_grads.items():
                grads[self._rnn_name(name, k)] = value
            if cache.dropout_masks[k] is not None:
                d_hidden = d_hidden * cache.dropout_masks[k]
        if cfg.uses_tokens:
            grads["embedding.weight"] = embedding_backward(
                d_hidden, cache.token_ids, cfg.vocab_size
            )
        return {name: grads[name] for name in self.params}

    # -------------------------------------------------------------- generation
    def step_tokens(
        self, token_ids: np.ndarray, states: list[tuple[np.ndarray, np.ndarray | None]] | None
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None]]]:
        """One step of a token model: ``(B,)`` ids and per-layer states -> ``(B, O)`` logits.

        Used for sampling; states are per layer ``(h, c)`` with shapes ``(D, B, H)``.
        """
        batch = token_ids.shape[0]
        layout = PackedLayout.from_lengths(np.ones(batch, dtype=np.int64), 1)
        hidden = embedding_forward(self.params["embedding.weight"], token_ids[layout.order])
        new_states = []
        for k, layer in enumerate(self.layers):
            h0, c0 = (None, None) if states is None else states[k]
            hidden, h_n, c_n, _ = layer.forward_packed(hidden, layout, h0, c0, training=False)
            new_states.append((h_n, c_n))
        outputs = dense_forward(self.params["head.weight"], self.params["head.bias"], hidden)
        return outputs[layout.inverse_order], new_states
