"""The model class a configuration belongs to: ``head="seq2seq"`` is an encoder-decoder
(:class:`~sparklstm.model.seq2seq.Seq2SeqModel`), any other head a
:class:`~sparklstm.model.SequenceModel`. The trainers, the Spark tasks and the checkpoints
hold configurations as JSON dicts and build models through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparklstm.metrics import metrics_from_totals as sequence_metrics
from sparklstm.model.config import ModelConfig
from sparklstm.model.seq2seq import Seq2SeqModel, seq2seq_metrics
from sparklstm.model.seq2seq_config import Seq2SeqConfig
from sparklstm.model.sequence_model import SequenceModel

__all__ = [
    "AnyConfig",
    "AnyModel",
    "config_from_dict",
    "is_seq2seq",
    "metrics_from_totals",
    "model_from_config",
]

AnyConfig = ModelConfig | Seq2SeqConfig
AnyModel = SequenceModel | Seq2SeqModel


def is_seq2seq(model: Any) -> bool:
    """Whether ``model`` (a model, a config, or a dict of options) is an encoder-decoder."""
    if isinstance(model, (Seq2SeqModel, Seq2SeqConfig)):
        return True
    if isinstance(model, Mapping):
        return model.get("head") == "seq2seq"
    return False


def config_from_dict(data: Mapping[str, Any]) -> AnyConfig:
    """The configuration object of either kind from its JSON dict."""
    return Seq2SeqConfig.from_dict(data) if is_seq2seq(data) else ModelConfig.from_dict(data)


def model_from_config(config: AnyConfig | Mapping[str, Any]) -> AnyModel:
    """A freshly initialised model of the configuration's kind."""
    if isinstance(config, Mapping):
        config = config_from_dict(config)
    if isinstance(config, Seq2SeqConfig):
        return Seq2SeqModel.from_config(config)
    return SequenceModel.from_config(config)


def metrics_from_totals(config: AnyConfig, totals: Mapping[str, float]) -> dict[str, float]:
    """The metrics of summed evaluation totals, as the configuration's model class reports
    them."""
    if isinstance(config, Seq2SeqConfig):
        return seq2seq_metrics(config, totals)
    return sequence_metrics(config, totals)
