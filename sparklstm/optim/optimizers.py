"""Optimizers (the update rules of ``torch.optim``) and their state."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sparklstm.optim.checks import (
    build,
    check_flag,
    check_in_unit,
    check_non_negative,
    check_positive,
    set_field,
    split_config,
)

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
        step_lr = self.lr if lr is None else check_non_negative("lr", lr)
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


def _ema(
    avg: np.ndarray, decay: float, value: np.ndarray, scratch: np.ndarray | None = None
) -> None:
    """``avg = decay * avg + (1 - decay) * value``, in place (``(1 - decay) * value`` into
    ``scratch`` when given, which may be ``value`` itself)."""
    avg *= decay
    avg += np.multiply(1.0 - decay, value, out=scratch)


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
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "momentum", check_in_unit("momentum", self.momentum))
        set_field(self, "nesterov", check_flag("nesterov", self.nesterov))
        set_field(self, "dampening", check_in_unit("dampening", self.dampening, include_one=True))
        set_field(self, "weight_decay", check_non_negative("weight_decay", self.weight_decay))
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
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "alpha", check_in_unit("alpha", self.alpha))
        set_field(self, "eps", check_positive("eps", self.eps))
        set_field(self, "momentum", check_in_unit("momentum", self.momentum))
        set_field(self, "centered", check_flag("centered", self.centered))
        set_field(self, "weight_decay", check_non_negative("weight_decay", self.weight_decay))

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
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "rho", check_in_unit("rho", self.rho))
        set_field(self, "eps", check_positive("eps", self.eps))
        set_field(self, "weight_decay", check_non_negative("weight_decay", self.weight_decay))

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
        set_field(self, "lr", check_positive("lr", self.lr))
        set_field(self, "beta1", check_in_unit("beta1", self.beta1))
        set_field(self, "beta2", check_in_unit("beta2", self.beta2))
        set_field(self, "eps", check_positive("eps", self.eps))
        set_field(self, "weight_decay", check_non_negative("weight_decay", self.weight_decay))
        set_field(
            self,
            "decoupled_weight_decay",
            check_flag("decoupled_weight_decay", self.decoupled_weight_decay),
        )
        set_field(self, "amsgrad", check_flag("amsgrad", self.amsgrad))

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
        # One temporary per parameter (it was four), every operation in place; the same
        # operations in the same order, so the same bits as torch's formula.
        scratch = np.empty_like(param)
        _ema(exp_avg, self.beta1, g, scratch)
        np.multiply(g, g, out=scratch)
        _ema(exp_avg_sq, self.beta2, scratch, scratch)
        if self.amsgrad:
            second = slots["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        bias_correction1 = 1.0 - self.beta1**step
        bias_correction2_sqrt = math.sqrt(1.0 - self.beta2**step)
        denom = np.sqrt(second, out=scratch)
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
    return build("optimizer", _optimizer_classes(), name, kwargs)


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
    name, kwargs = split_config("optimizer", config)
    return make_optimizer(name, **kwargs)
