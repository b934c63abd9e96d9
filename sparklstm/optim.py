"""Optimizers, gradient clipping and learning-rate schedules, in NumPy.

Parameters and gradients are ``dict[str, np.ndarray]`` with the same keys. Every optimizer
updates the parameter arrays **in place** (each ``params[k]`` keeps its identity and dtype), so a
network whose layers hold views of those arrays sees the update. The update rules are those of
``torch.optim`` (``SGD``, ``RMSprop``, ``Adadelta``, ``Adam``/``AdamW``), so hyper-parameters
carry over.

All optimizer state lives in an :class:`OptimizerState`: an integer ``step`` and float arrays in
``slots``. :meth:`OptimizerState.to_arrays` flattens it into npz-ready arrays; the Spark trainer
averages those flat arrays across workers and rebuilds a state with
:meth:`OptimizerState.from_arrays`.

Optimizers and schedules are frozen dataclasses, validated on construction, with a JSON-safe
``to_config()`` and the inverse functions :func:`optimizer_from_config` and
:func:`schedule_from_config`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "OptimizerState",
    "Optimizer",
    "SGD",
    "RMSProp",
    "Adadelta",
    "Adam",
    "optimizer_from_config",
    "make_optimizer",
    "clip_grad_norm",
    "clip_grad_value",
    "Schedule",
    "ConstantLR",
    "StepLR",
    "ExponentialLR",
    "CosineLR",
    "WarmupLR",
    "schedule_from_config",
    "make_schedule",
]


# --------------------------------------------------------------------------------------------
# argument checks (every failure is a ValueError naming the argument)


def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, np.complexfloating):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def _positive(name: str, value: Any) -> float:
    result = _real(name, value)
    if result <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result


def _non_negative(name: str, value: Any) -> float:
    result = _real(name, value)
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def _in_unit(name: str, value: Any, include_one: bool = False) -> float:
    result = _real(name, value)
    if not (0 <= result <= 1 if include_one else 0 <= result < 1):
        interval = "[0, 1]" if include_one else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return result


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _set(obj: Any, name: str, value: Any) -> None:
    """Store a normalised value on a frozen dataclass (used in ``__post_init__`` only)."""
    object.__setattr__(obj, name, value)


def _build(kind: str, classes: tuple[type, ...], name: Any, kwargs: Mapping[str, Any]) -> Any:
    """Instantiate the class registered as ``name`` with ``kwargs``, with clear errors."""
    registry = {cls.name: cls for cls in classes}
    if not isinstance(name, str) or name.lower() not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid names are {', '.join(sorted(registry))}")
    cls = registry[name.lower()]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - set(fields))
    if unknown:
        raise ValueError(
            f"{cls.name}: unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"valid arguments are {', '.join(fields)}"
        )
    missing = [
        f.name
        for f in fields.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{cls.name}: missing required argument(s) {', '.join(missing)}")
    return cls(**kwargs)


def _split_config(kind: str, config: Any) -> tuple[Any, dict[str, Any]]:
    if not isinstance(config, Mapping):
        raise ValueError(f"{kind} config must be a mapping, got {type(config).__name__}")
    if "name" not in config:
        raise ValueError(f"{kind} config has no 'name' key: {dict(config)!r}")
    rest = {k: v for k, v in config.items() if k != "name"}
    return config["name"], rest


# --------------------------------------------------------------------------------------------
# optimizer state


@dataclass
class OptimizerState:
    """Everything an optimizer remembers between steps.

    Parameters
    ----------
    step : int
        Number of updates done so far.
    slots : dict
        ``slot name -> parameter name -> array`` with the parameter's shape and dtype (e.g.
        ``slots["exp_avg"]["weight_ih_l0"]``). Only float arrays, so states from several workers
        can be averaged element-wise.
    """

    step: int = 0
    slots: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def to_arrays(self, prefix: str = "optim/") -> dict[str, np.ndarray]:
        """Flatten into npz-ready arrays (copies).

        Parameters
        ----------
        prefix : str
            Prepended to every key, so the arrays can share a file with the model's parameters.

        Returns
        -------
        dict[str, np.ndarray]
            ``f"{prefix}step"`` (0-d int64) and ``f"{prefix}{slot}/{param}"`` for every slot array.
        """
        arrays: dict[str, np.ndarray] = {f"{prefix}step": np.array(self.step, dtype=np.int64)}
        for slot, per_param in self.slots.items():
            for param, value in per_param.items():
                arrays[f"{prefix}{slot}/{param}"] = np.array(value, copy=True)
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], prefix: str = "optim/"
    ) -> OptimizerState:
        """Rebuild a state from :meth:`to_arrays` output (keys without ``prefix`` are ignored).

        A floating-point ``step`` (as left by a weighted average of several workers' states) is
        rounded to the nearest integer (halves up).

        Parameters
        ----------
        arrays : Mapping[str, np.ndarray]
            Flat arrays, e.g. an opened ``.npz`` file.
        prefix : str
            The prefix used by :meth:`to_arrays`.

        Returns
        -------
        OptimizerState

        Raises
        ------
        ValueError
            If ``f"{prefix}step"`` is missing or not a finite non-negative scalar, or a key with
            the prefix is not of the form ``f"{prefix}{slot}/{param}"``.
        """
        step_key = f"{prefix}step"
        if step_key not in arrays:
            raise ValueError(
                f"optimizer state arrays have no {step_key!r} key (wrong prefix {prefix!r}, or "
                "not saved by OptimizerState.to_arrays?)"
            )
        raw_step = np.asarray(arrays[step_key])
        if raw_step.size != 1 or not (
            np.issubdtype(raw_step.dtype, np.integer) or np.issubdtype(raw_step.dtype, np.floating)
        ):
            raise ValueError(f"{step_key} must be a number, got {raw_step!r}")
        step_value = float(raw_step.reshape(()))
        if not math.isfinite(step_value) or step_value < -0.5:
            raise ValueError(f"{step_key} must be a finite count >= 0, got {step_value}")
        slots: dict[str, dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            if not key.startswith(prefix) or key == step_key:
                continue
            slot, sep, param = key[len(prefix) :].partition("/")
            if not sep or not slot or not param:
                raise ValueError(
                    f"unexpected optimizer state key {key!r}; expected prefix+slot/param"
                )
            slots.setdefault(slot, {})[param] = np.array(value, copy=True)
        return cls(step=math.floor(step_value + 0.5), slots=slots)

    def copy(self) -> OptimizerState:
        """Deep copy (every array is copied).

        Returns
        -------
        OptimizerState
        """
        return OptimizerState(
            step=int(self.step),
            slots={
                slot: {param: value.copy() for param, value in per_param.items()}
                for slot, per_param in self.slots.items()
            },
        )


# --------------------------------------------------------------------------------------------
# optimizers


@dataclass(frozen=True)
class Optimizer(abc.ABC):
    """Base class: validation of inputs and state, the step counter, and configs.

    Subclasses are frozen dataclasses whose fields are the hyper-parameters (``lr`` always
    among them) and implement :meth:`slot_names` and :meth:`_update`.
    """

    name: ClassVar[str]
    lr: float

    @abc.abstractmethod
    def slot_names(self) -> tuple[str, ...]:
        """Names of the per-parameter state arrays this configuration needs.

        Returns
        -------
        tuple[str, ...]
        """

    @abc.abstractmethod
    def _update(
        self,
        param: np.ndarray,
        grad: np.ndarray,
        slots: dict[str, np.ndarray],
        lr: float,
        step: int,
    ) -> None:
        """Update one parameter in place (``step`` is 1 at first); never write ``grad``."""

    def init_state(self, params: Mapping[str, np.ndarray]) -> OptimizerState:
        """A fresh state: ``step`` 0 and zero slots shaped like each parameter.

        Parameters
        ----------
        params : Mapping[str, np.ndarray]
            The float parameter arrays that :meth:`step` will update.

        Returns
        -------
        OptimizerState
        """
        for key, value in params.items():
            if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
                raise ValueError(f"params[{key!r}] must be a float NumPy array")
        return OptimizerState(
            step=0,
            slots={
                slot: {key: np.zeros_like(value) for key, value in params.items()}
                for slot in self.slot_names()
            },
        )

    def step(
        self,
        params: dict[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        state: OptimizerState,
        lr: float | None = None,
    ) -> None:
        """One update of every parameter, in place, and ``state.step += 1``.

        Parameters
        ----------
        params : dict[str, np.ndarray]
            Updated in place; every array keeps its identity and dtype.
        grads : Mapping[str, np.ndarray]
            Same keys and shapes as ``params``. Never modified.
        state : OptimizerState
            From :meth:`init_state` (or restored); updated in place.
        lr : float, optional
            Learning rate for this step only (a schedule's value); default ``self.lr``.

        Raises
        ------
        ValueError
            If the keys or shapes of ``grads`` differ from ``params``, ``state`` lacks a slot
            array this optimizer needs, or ``lr`` is negative or not finite.
        """
        step_lr = self.lr if lr is None else _non_negative("lr", lr)
        if set(grads) != set(params):
            missing = sorted(set(params) - set(grads))
            extra = sorted(set(grads) - set(params))
            raise ValueError(
                f"grads and params have different keys: missing grads {missing}, "
                f"grads without a param {extra}"
            )
        for key, value in params.items():
            if grads[key].shape != value.shape:
                raise ValueError(
                    f"grads[{key!r}] has shape {grads[key].shape}; params[{key!r}] has "
                    f"shape {value.shape}"
                )
        self._check_state(params, state)
        step = int(state.step) + 1
        for key, param in params.items():
            slots = {slot: state.slots[slot][key] for slot in self.slot_names()}
            self._update(param, grads[key], slots, step_lr, step)
        state.step = step

    def _check_state(self, params: Mapping[str, np.ndarray], state: OptimizerState) -> None:
        """Every slot array exists with the param's shape; cast to the param's dtype if needed."""
        for slot in self.slot_names():
            per_param = state.slots.get(slot)
            if per_param is None:
                raise ValueError(
                    f"optimizer state has no slot {slot!r} (has {sorted(state.slots)}): it was "
                    f"not made by this {self.name} optimizer's init_state"
                )
            for key, param in params.items():
                value = per_param.get(key)
                if value is None:
                    raise ValueError(f"optimizer state slot {slot!r} has no array for {key!r}")
                if value.shape != param.shape:
                    raise ValueError(
                        f"optimizer state {slot}/{key} has shape {value.shape}; the param has "
                        f"shape {param.shape}"
                    )
                if value.dtype != param.dtype:
                    per_param[key] = value.astype(param.dtype)

    def to_config(self) -> dict[str, Any]:
        """JSON-safe hyper-parameters, with the optimizer's ``"name"``.

        Returns
        -------
        dict
        """
        return {"name": self.name, **dataclasses.asdict(self)}


def _with_weight_decay(param: np.ndarray, grad: np.ndarray, weight_decay: float) -> np.ndarray:
    """``grad + weight_decay * param`` as a new array (``grad`` itself when no decay)."""
    if weight_decay == 0:
        return grad
    return grad + weight_decay * param


def _ema(avg: np.ndarray, decay: float, value: np.ndarray) -> None:
    """``avg = decay * avg + (1 - decay) * value``, in place."""
    avg *= decay
    avg += (1.0 - decay) * value


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    With ``g = grad + weight_decay * p``: ``buf = g`` on the first step, afterwards
    ``buf = momentum * buf + (1 - dampening) * g``; the update direction is ``buf``, or
    ``g + momentum * buf`` with ``nesterov``; ``p -= lr * direction``.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    momentum : float
        Momentum factor in [0, 1); 0 disables momentum (and its state slot).
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    dampening : float
        Dampening of the momentum, in [0, 1].
    weight_decay : float
        L2 penalty (>= 0) added to the gradient.
    """

    name: ClassVar[str] = "sgd"
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    dampening: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "momentum", _in_unit("momentum", self.momentum))
        _set(self, "nesterov", _flag("nesterov", self.nesterov))
        _set(self, "dampening", _in_unit("dampening", self.dampening, include_one=True))
        _set(self, "weight_decay", _non_negative("weight_decay", self.weight_decay))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov requires momentum > 0 and dampening == 0, got momentum="
                f"{self.momentum}, dampening={self.dampening}"
            )

    def slot_names(self) -> tuple[str, ...]:
        """``("momentum",)`` when momentum is used, else ``()``."""
        return ("momentum",) if self.momentum > 0 else ()

    def _update(self, param, grad, slots, lr, step) -> None:
        g = _with_weight_decay(param, grad, self.weight_decay)
        if self.momentum > 0:
            buf = slots["momentum"]
            if step == 1:
                np.copyto(buf, g, casting="same_kind")
            else:
                buf *= self.momentum
                buf += g if self.dampening == 0 else (1.0 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        param -= lr * g


@dataclass(frozen=True)
class RMSProp(Optimizer):
    """RMSProp, as ``torch.optim.RMSprop``.

    With ``g = grad + weight_decay * p``: ``square_avg = alpha * square_avg + (1 - alpha) * g**2``;
    centered also tracks ``grad_avg`` (same average of ``g``) and uses
    ``square_avg - grad_avg**2``; ``avg = sqrt(that) + eps``. Without momentum
    ``p -= lr * g / avg``; with it ``buf = momentum * buf + g / avg`` and ``p -= lr * buf``.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    alpha : float
        Decay of the squared-gradient average, in [0, 1).
    eps : float
        Added to the denominator (> 0).
    momentum : float
        Momentum factor in [0, 1).
    centered : bool
        Normalise by the estimated variance of the gradient instead of its second moment.
    weight_decay : float
        L2 penalty (>= 0) added to the gradient.
    """

    name: ClassVar[str] = "rmsprop"
    lr: float = 1e-3
    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "alpha", _in_unit("alpha", self.alpha))
        _set(self, "eps", _positive("eps", self.eps))
        _set(self, "momentum", _in_unit("momentum", self.momentum))
        _set(self, "centered", _flag("centered", self.centered))
        _set(self, "weight_decay", _non_negative("weight_decay", self.weight_decay))

    def slot_names(self) -> tuple[str, ...]:
        """``"square_avg"``, plus ``"momentum"`` and ``"grad_avg"`` when configured."""
        names = ["square_avg"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("grad_avg")
        return tuple(names)

    def _update(self, param, grad, slots, lr, step) -> None:
        g = _with_weight_decay(param, grad, self.weight_decay)
        square_avg = slots["square_avg"]
        _ema(square_avg, self.alpha, g * g)
        if self.centered:
            grad_avg = slots["grad_avg"]
            _ema(grad_avg, self.alpha, g)
            avg = square_avg - grad_avg * grad_avg
            # >= 0 in exact arithmetic; clamp rounding error so sqrt cannot give NaN
            np.maximum(avg, 0, out=avg)
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(square_avg)
        avg += self.eps
        np.divide(g, avg, out=avg)  # avg now holds g / avg
        if self.momentum > 0:
            buf = slots["momentum"]
            buf *= self.momentum
            buf += avg
            param -= lr * buf
        else:
            avg *= lr
            param -= avg


@dataclass(frozen=True)
class Adadelta(Optimizer):
    """Adadelta, as ``torch.optim.Adadelta``.

    With ``g = grad + weight_decay * p``: ``square_avg = rho * square_avg + (1 - rho) * g**2``,
    ``delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g``,
    ``acc_delta = rho * acc_delta + (1 - rho) * delta**2`` and ``p -= lr * delta``.

    Parameters
    ----------
    lr : float
        Scale of the update (> 0; 1.0 is the original algorithm).
    rho : float
        Decay of both running averages, in [0, 1).
    eps : float
        Added inside both square roots (> 0).
    weight_decay : float
        L2 penalty (>= 0) added to the gradient.
    """

    name: ClassVar[str] = "adadelta"
    lr: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "rho", _in_unit("rho", self.rho))
        _set(self, "eps", _positive("eps", self.eps))
        _set(self, "weight_decay", _non_negative("weight_decay", self.weight_decay))

    def slot_names(self) -> tuple[str, ...]:
        """``("square_avg", "acc_delta")``."""
        return ("square_avg", "acc_delta")

    def _update(self, param, grad, slots, lr, step) -> None:
        g = _with_weight_decay(param, grad, self.weight_decay)
        square_avg, acc_delta = slots["square_avg"], slots["acc_delta"]
        _ema(square_avg, self.rho, g * g)
        std = square_avg + self.eps
        np.sqrt(std, out=std)
        delta = acc_delta + self.eps
        np.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        _ema(acc_delta, self.rho, delta * delta)
        delta *= lr
        param -= delta


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; ``decoupled_weight_decay=True`` gives AdamW.

    With ``t = state.step`` after the increment: ``exp_avg = beta1 * exp_avg + (1 - beta1) * g``,
    ``exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g**2`` (with ``amsgrad`` the denominator
    uses the running maximum ``max_exp_avg_sq``), and
    ``p -= lr / (1 - beta1**t) * exp_avg / (sqrt(exp_avg_sq / (1 - beta2**t)) + eps)`` with the
    square root of the bias correction taken separately, as torch does. Weight decay is either
    L2 added to the gradient (``g = grad + weight_decay * p``) or, decoupled,
    ``p *= 1 - lr * weight_decay`` before the update.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    beta1, beta2 : float
        Decay of the first and second moment averages, in [0, 1).
    eps : float
        Added to the denominator (> 0).
    weight_decay : float
        Weight decay (>= 0).
    decoupled_weight_decay : bool
        Decay the weights directly (AdamW) instead of adding L2 to the gradient.
    amsgrad : bool
        Use the maximum of all second-moment averages so far (AMSGrad).
    """

    name: ClassVar[str] = "adam"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    amsgrad: bool = False

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "beta1", _in_unit("beta1", self.beta1))
        _set(self, "beta2", _in_unit("beta2", self.beta2))
        _set(self, "eps", _positive("eps", self.eps))
        _set(self, "weight_decay", _non_negative("weight_decay", self.weight_decay))
        _set(
            self,
            "decoupled_weight_decay",
            _flag("decoupled_weight_decay", self.decoupled_weight_decay),
        )
        _set(self, "amsgrad", _flag("amsgrad", self.amsgrad))

    def slot_names(self) -> tuple[str, ...]:
        """``("exp_avg", "exp_avg_sq")``, plus ``"max_exp_avg_sq"`` with ``amsgrad``."""
        return (
            ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
            if self.amsgrad
            else ("exp_avg", "exp_avg_sq")
        )

    def _update(self, param, grad, slots, lr, step) -> None:
        if self.decoupled_weight_decay:
            g = grad
            if self.weight_decay != 0:
                param *= 1.0 - lr * self.weight_decay
        else:
            g = _with_weight_decay(param, grad, self.weight_decay)
        exp_avg, exp_avg_sq = slots["exp_avg"], slots["exp_avg_sq"]
        _ema(exp_avg, self.beta1, g)
        _ema(exp_avg_sq, self.beta2, g * g)
        if self.amsgrad:
            second = slots["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        bias_correction1 = 1.0 - self.beta1**step
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**step)
        denom = np.sqrt(second)
        denom /= bias_correction2_sqrt
        denom += self.eps
        np.divide(exp_avg, denom, out=denom)
        denom *= lr / bias_correction1
        param -= denom


def _optimizer_classes() -> tuple[type[Optimizer], ...]:
    return (SGD, RMSProp, Adadelta, Adam)


# The names make_optimizer accepts (the jobs' --optimizer choices are exactly these).
OPTIMIZER_NAMES: tuple[str, ...] = tuple(cls.name for cls in _optimizer_classes())


def make_optimizer(name: str, **kwargs: Any) -> Optimizer:
    """Build an optimizer by name.

    Parameters
    ----------
    name : str
        ``"sgd"``, ``"rmsprop"``, ``"adadelta"`` or ``"adam"`` (case-insensitive).
    **kwargs
        The optimizer's hyper-parameters.

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For an unknown name, an unknown or missing argument, or an invalid value.
    """
    return _build("optimizer", _optimizer_classes(), name, kwargs)


def optimizer_from_config(config: Mapping[str, Any]) -> Optimizer:
    """Inverse of :meth:`Optimizer.to_config`.

    Parameters
    ----------
    config : Mapping[str, Any]
        ``{"name": ..., **hyper_parameters}``.

    Returns
    -------
    Optimizer
    """
    name, kwargs = _split_config("optimizer", config)
    return make_optimizer(name, **kwargs)


# --------------------------------------------------------------------------------------------
# gradient clipping


def _global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """L2 norm of all arrays together, accumulated in float64 (rescaled if squares overflow)."""
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for g in grads.values():
            flat = np.asarray(g, dtype=np.float64).ravel()
            total += float(np.dot(flat, flat))
    if math.isfinite(total) or any(not np.isfinite(g).all() for g in grads.values()):
        return math.sqrt(total)
    # all entries finite but the sum of squares overflowed: rescale by the largest magnitude
    scale = max(float(np.max(np.abs(g))) for g in grads.values() if g.size)
    total = 0.0
    for g in grads.values():
        flat = np.asarray(g, dtype=np.float64).ravel() / scale
        total += float(np.dot(flat, flat))
    return scale * math.sqrt(total)


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    If the norm exceeds ``max_norm`` every array is multiplied by
    ``max_norm / (norm + 1e-6)``. A non-finite norm leaves the gradients untouched (the caller
    decides what to do).

    Parameters
    ----------
    grads : dict[str, np.ndarray]
        Gradient arrays, modified in place.
    max_norm : float
        Largest allowed global norm (> 0).

    Returns
    -------
    float
        The global norm before clipping (computed in float64).
    """
    max_norm = _positive("max_norm", max_norm)
    norm = _global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        coef = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= coef
    return norm


def clip_grad_value(grads: dict[str, np.ndarray], clip_value: float) -> None:
    """Clip every gradient entry to ``[-clip_value, clip_value]``, in place.

    Parameters
    ----------
    grads : dict[str, np.ndarray]
        Gradient arrays, modified in place.
    clip_value : float
        Largest allowed magnitude (> 0).
    """
    clip_value = _positive("clip_value", clip_value)
    for g in grads.values():
        np.clip(g, -clip_value, clip_value, out=g)


# --------------------------------------------------------------------------------------------
# learning-rate schedules


@dataclass(frozen=True)
class Schedule(abc.ABC):
    """Base class of learning-rate schedules: the rate as a function of the step count."""

    name: ClassVar[str]

    @abc.abstractmethod
    def _lr(self, step: int) -> float:
        """The rate for a validated ``step``."""

    def lr_at(self, step: int) -> float:
        """Learning rate of the update after ``step`` updates (0-based).

        Parameters
        ----------
        step : int
            Number of updates already done (``state.step``), >= 0.

        Returns
        -------
        float
        """
        return float(self._lr(_int_at_least("step", step, 0)))

    def to_config(self) -> dict[str, Any]:
        """JSON-safe parameters, with the schedule's ``"name"``.

        Returns
        -------
        dict
        """
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ConstantLR(Schedule):
    """The same rate at every step.

    Parameters
    ----------
    lr : float
        The learning rate (> 0).
    """

    name: ClassVar[str] = "constant"
    lr: float

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))

    def _lr(self, step: int) -> float:
        return self.lr


@dataclass(frozen=True)
class StepLR(Schedule):
    """``lr * gamma ** (step // step_size)``: decay by ``gamma`` every ``step_size`` updates.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    step_size : int
        Updates between decays (>= 1).
    gamma : float
        Multiplicative factor (> 0).
    """

    name: ClassVar[str] = "step"
    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "step_size", _int_at_least("step_size", self.step_size, 1))
        _set(self, "gamma", _positive("gamma", self.gamma))

    def _lr(self, step: int) -> float:
        return self.lr * self.gamma ** (step // self.step_size)


@dataclass(frozen=True)
class ExponentialLR(Schedule):
    """``lr * gamma ** step``.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    gamma : float
        Factor per update (> 0).
    """

    name: ClassVar[str] = "exponential"
    lr: float
    gamma: float

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "gamma", _positive("gamma", self.gamma))

    def _lr(self, step: int) -> float:
        return self.lr * self.gamma**step


@dataclass(frozen=True)
class CosineLR(Schedule):
    """Cosine annealing from ``lr`` to ``min_lr`` over ``total_steps``, then ``min_lr``.

    ``min_lr + (lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2`` for
    ``step < total_steps``.

    Parameters
    ----------
    lr : float
        Initial rate (> 0).
    total_steps : int
        Length of the annealing (>= 1).
    min_lr : float
        Final rate, in [0, lr].
    """

    name: ClassVar[str] = "cosine"
    lr: float
    total_steps: int
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "lr", _positive("lr", self.lr))
        _set(self, "total_steps", _int_at_least("total_steps", self.total_steps, 1))
        _set(self, "min_lr", _non_negative("min_lr", self.min_lr))
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr must be <= lr ({self.lr}), got {self.min_lr}")

    def _lr(self, step: int) -> float:
        if step >= self.total_steps:
            return self.min_lr
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.total_steps))
        return self.min_lr + (self.lr - self.min_lr) * cosine


@dataclass(frozen=True)
class WarmupLR(Schedule):
    """Linear warm-up before another schedule.

    For ``step < warmup_steps`` the rate is
    ``base.lr_at(0) * (start_factor + (1 - start_factor) * step / warmup_steps)``; afterwards
    ``base.lr_at(step - warmup_steps)``.

    Parameters
    ----------
    base : Schedule or its config dict
        The schedule that starts once warm-up ends.
    warmup_steps : int
        Length of the warm-up (>= 0; 0 means none).
    start_factor : float
        Fraction of ``base.lr_at(0)`` at step 0, in [0, 1].
    """

    name: ClassVar[str] = "warmup"
    base: Schedule
    warmup_steps: int
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        base = self.base
        if isinstance(base, Mapping):
            base = schedule_from_config(base)
        if not isinstance(base, Schedule):
            raise ValueError(f"base must be a Schedule or its config dict, got {base!r}")
        _set(self, "base", base)
        _set(self, "warmup_steps", _int_at_least("warmup_steps", self.warmup_steps, 0))
        _set(self, "start_factor", _in_unit("start_factor", self.start_factor, include_one=True))

    def _lr(self, step: int) -> float:
        if step < self.warmup_steps:
            fraction = self.start_factor + (1.0 - self.start_factor) * step / self.warmup_steps
            return self.base.lr_at(0) * fraction
        return self.base.lr_at(step - self.warmup_steps)

    def to_config(self) -> dict[str, Any]:
        """JSON-safe parameters; ``"base"`` is the base schedule's config.

        Returns
        -------
        dict
        """
        return {
            "name": self.name,
            "base": self.base.to_config(),
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
        }


def _schedule_classes() -> tuple[type[Schedule], ...]:
    return (ConstantLR, StepLR, ExponentialLR, CosineLR, WarmupLR)


def make_schedule(name: str, **kwargs: Any) -> Schedule:
    """Build a learning-rate schedule by name.

    Parameters
    ----------
    name : str
        ``"constant"``, ``"step"``, ``"exponential"``, ``"cosine"`` or ``"warmup"``
        (case-insensitive).
    **kwargs
        The schedule's parameters (``base`` of ``"warmup"`` may be a config dict).

    Returns
    -------
    Schedule

    Raises
    ------
    ValueError
        For an unknown name, an unknown or missing argument, or an invalid value.
    """
    return _build("schedule", _schedule_classes(), name, kwargs)


def schedule_from_config(config: Mapping[str, Any]) -> Schedule:
    """Inverse of :meth:`Schedule.to_config`.

    Parameters
    ----------
    config : Mapping[str, Any]
        ``{"name": ..., **parameters}``.

    Returns
    -------
    Schedule
    """
    name, kwargs = _split_config("schedule", config)
    return make_schedule(name, **kwargs)
