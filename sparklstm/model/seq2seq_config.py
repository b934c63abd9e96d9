"""The configuration of an encoder-decoder (sequence-to-sequence) model: a frozen dataclass,
validated once, stored as JSON with the model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparklstm.model.config import CELLS
from sparklstm.options import boolean, check_fields, choice, integer, integers, real, text
from sparklstm.validation import check_no_unknown_keys, resolve_dtype

__all__ = ["ATTENTIONS", "Seq2SeqConfig"]

ATTENTIONS = ("luong", "none")


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Everything that defines a :class:`~sparklstm.model.seq2seq.Seq2SeqModel`'s structure.

    The source side is float sequences (``input_size``) or token ids (``source_vocab_size``);
    the target side is token ids (``target_vocab_size``, softmax over the vocabulary, with
    ``start_token`` and ``end_token`` in it) or real vectors (``output_size``, squared error:
    multi-step forecasting). Give exactly one of each pair.

    The encoder is ``len(hidden_sizes)`` stacked layers of ``cell`` (optionally bidirectional);
    the decoder is the same stack, one direction. Decoder layer ``k`` starts from encoder layer
    ``k``'s final state: as it is for a one-direction encoder, and through the bridge
    ``h = tanh(W_h [h_fwd; h_bwd] + b_h)`` (and, for LSTM cells, ``c = W_c [c_fwd; c_bwd] +
    b_c``) for a bidirectional one, where ``h_bwd``/``c_bwd`` are the reverse direction's state
    after the first step.
    """

    # As in ModelConfig, each field's definition is read by the Spark ML Params and the jobs'
    # flags; param="" / flag="" mark a view that does not take it (the data decides the sizes of
    # float sources and real-valued targets; the seed is the training seed there).
    input_size: int | None = integer(
        None, "features per step of float sources", optional=True, param="", flag=""
    )
    source_vocab_size: int | None = integer(
        None, "token ids of token sources (an embedding comes first)", optional=True
    )
    target_vocab_size: int | None = integer(
        None,
        "token ids of token targets, start and end tokens included (minimum 3)",
        minimum=3,
        optional=True,
    )
    output_size: int | None = integer(
        None,
        "values per step of real-valued targets (forecasting)",
        optional=True,
        param="",
        flag="",
    )
    embedding_dim: int = integer(32, "embedding width of token sources and targets")
    cell: str = choice("lstm", CELLS, "recurrent cell of encoder and decoder", param="cellType")
    hidden_sizes: tuple[int, ...] = integers((64,), "hidden size of each stacked layer")
    bidirectional: bool = boolean(False, "the encoder's layers run in both directions")
    attention: str = choice(
        "luong",
        ATTENTIONS,
        "luong: Luong 'general' attention over the encoder outputs; none: the final states only",
    )
    start_token: int = integer(
        1, "id that starts every decoded sequence (token targets)", minimum=0
    )
    end_token: int = integer(2, "id that ends every decoded sequence (token targets)", minimum=0)
    sampling_rate: float = real(
        0.0,
        "scheduled sampling: the chance that a decoder input in training is the model's own "
        "previous prediction instead of the true one (0: teacher forcing)",
        minimum=0.0,
        maximum=1.0,
        open_maximum=True,
    )
    forget_bias: float = real(1.0, "initial LSTM forget-gate bias", param="", flag="")
    dtype: str = text("float32", "float32 or float64", param="")
    seed: int | None = integer(
        None, "seed of the initial weights", minimum=0, optional=True, param="", flag=""
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if (self.input_size is None) == (self.source_vocab_size is None):
            raise ValueError("give exactly one of input_size and source_vocab_size")
        if (self.target_vocab_size is None) == (self.output_size is None):
            raise ValueError(
                "give exactly one of target_vocab_size (token targets) and output_size "
                "(real-valued targets)"
            )
        if self.target_vocab_size is not None:
            for name in ("start_token", "end_token"):
                if getattr(self, name) >= self.target_vocab_size:
                    raise ValueError(
                        f"{name}={getattr(self, name)} is not below target_vocab_size="
                        f"{self.target_vocab_size}"
                    )
            if self.start_token == self.end_token:
                raise ValueError("start_token and end_token must differ")
        object.__setattr__(self, "dtype", resolve_dtype(self.dtype).name)

    @property
    def token_source(self) -> bool:
        return self.source_vocab_size is not None

    @property
    def token_target(self) -> bool:
        return self.target_vocab_size is not None

    @property
    def task(self) -> str:
        """How the outputs are scored: tokens are classified, values regressed."""
        return "classification" if self.token_target else "regression"

    @property
    def head(self) -> str:
        return "seq2seq"

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_width(self) -> int:
        """Width of the output layer: the target vocabulary, or the values per step."""
        return self.target_vocab_size if self.token_target else self.output_size

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON, with ``"head": "seq2seq"``, which tells a stored config of
        this kind from a :class:`~sparklstm.model.ModelConfig` (see
        :func:`sparklstm.model.factory.config_from_dict`)."""
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        return {"head": self.head, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Seq2SeqConfig:
        values = dict(data)
        head = values.pop("head", "seq2seq")
        if head != "seq2seq":
            raise ValueError(f"a seq2seq config has head 'seq2seq', got {head!r}")
        check_no_unknown_keys("seq2seq config", values, (f.name for f in dataclasses.fields(cls)))
        if isinstance(values.get("hidden_sizes"), list):
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        return cls(**values)
