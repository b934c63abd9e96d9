"""Optimizers, clipping and schedules of ``sparklstm.optim``.

The reference recurrences below are the ``torch.optim`` update equations written out by hand in
plain (out-of-place) NumPy, independently of the implementation; when torch is installed the
optimizers are also compared with ``torch.optim`` itself.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from sparklstm.optim import (
    SGD,
    Adadelta,
    Adam,
    ConstantLR,
    CosineLR,
    ExponentialLR,
    Optimizer,
    OptimizerState,
    RMSProp,
    StepLR,
    WarmupLR,
    clip_grad_norm,
    clip_grad_value,
    make_optimizer,
    make_schedule,
    optimizer_from_config,
    schedule_from_config,
)

# --------------------------------------------------------------------------------------------
# a small problem whose gradient depends on the parameters (so every step matters)

OFFSETS = {"weight_ih_l0": -0.2, "bias_hh_l0": 0.35, "head.weight": 0.05}


def initial_params(dtype=np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {"weight_ih_l0": (3, 4), "bias_hh_l0": (4,), "head.weight": (2, 3)}
    return {k: rng.normal(size=shape).astype(dtype) for k, shape in shapes.items()}


def grad_fn(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.tanh(2.0 * p) + 0.3 * p + OFFSETS[k] for k, p in params.items()}


LRS = [0.05, 0.04, 0.06, 0.03, 0.05, 0.02]  # a different lr override at every step


# --------------------------------------------------------------------------------------------
# hand-written references (torch.optim's equations, one step at a time, no in-place updates)


def ref_sgd(p, g, s, t, lr, momentum, dampening, nesterov, weight_decay):
    d = g + weight_decay * p
    if momentum != 0:
        buf = d if t == 1 else momentum * s["momentum"] + (1 - dampening) * d
        s["momentum"] = buf
        d = d + momentum * buf if nesterov else buf
    return p - lr * d


def ref_rmsprop(p, g, s, t, lr, alpha, eps, momentum, centered, weight_decay):
    d = g + weight_decay * p
    s["square_avg"] = alpha * s.get("square_avg", 0.0) + (1 - alpha) * d * d
    if centered:
        s["grad_avg"] = alpha * s.get("grad_avg", 0.0) + (1 - alpha) * d
        avg = np.sqrt(s["square_avg"] - s["grad_avg"] ** 2) + eps
    else:
        avg = np.sqrt(s["square_avg"]) + eps
    if momentum > 0:
        s["momentum"] = momentum * s.get("momentum", 0.0) + d / avg
        return p - lr * s["momentum"]
    return p - lr * d / avg


def ref_adadelta(p, g, s, t, lr, rho, eps, weight_decay):
    d = g + weight_decay * p
    s["square_avg"] = rho * s.get("square_avg", 0.0) + (1 - rho) * d**2
    delta = np.sqrt(s.get("acc_delta", 0.0) + eps) / np.sqrt(s["square_avg"] + eps) * d
    s["acc_delta"] = rho * s.get("acc_delta", 0.0) + (1 - rho) * delta**2
    return p - lr * delta


def ref_adam(p, g, s, t, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, amsgrad):
    if decoupled_weight_decay:
        p = p * (1 - lr * weight_decay)
        d = g
    else:
        d = g + weight_decay * p
    s["exp_avg"] = beta1 * s.get("exp_avg", 0.0) + (1 - beta1) * d
    s["exp_avg_sq"] = beta2 * s.get("exp_avg_sq", 0.0) + (1 - beta2) * d**2
    second = s["exp_avg_sq"]
    if amsgrad:
        s["max_exp_avg_sq"] = np.maximum(s.get("max_exp_avg_sq", 0.0), s["exp_avg_sq"])
        second = s["max_exp_avg_sq"]
    m_hat = s["exp_avg"] / (1 - beta1**t)
    v_hat = second / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


REFERENCES = {"sgd": ref_sgd, "rmsprop": ref_rmsprop, "adadelta": ref_adadelta, "adam": ref_adam}


def run_reference(opt: Optimizer, params, lrs):
    """Reference trajectory; returns final params and per-param slot values."""
    hyper = {k: v for k, v in opt.to_config().items() if k not in ("name", "lr")}
    update = REFERENCES[opt.name]
    p = {k: v.astype(np.float64) for k, v in params.items()}
    slots: dict[str, dict] = {k: {} for k in p}
    for t, lr in enumerate(lrs, start=1):
        g = grad_fn(p)
        p = {k: update(p[k], g[k], slots[k], t, lr, **hyper) for k in p}
    return p, slots


def run_ours(opt: Optimizer, params, lrs, state=None):
    state = opt.init_state(params) if state is None else state
    for lr in lrs:
        opt.step(params, grad_fn(params), state, lr=lr)
    return params, state


VARIANTS = [
    SGD(lr=0.1),
    SGD(lr=0.1, momentum=0.9),
    SGD(lr=0.1, momentum=0.8, dampening=0.3),
    SGD(lr=0.1, momentum=0.9, nesterov=True),
    SGD(lr=0.1, weight_decay=0.1),
    SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05),
    RMSProp(lr=0.01),
    RMSProp(lr=0.01, alpha=0.9, momentum=0.7),
    RMSProp(lr=0.01, centered=True),
    RMSProp(lr=0.01, alpha=0.8, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-6),
    Adadelta(),
    Adadelta(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1),
    Adam(lr=0.01),
    Adam(lr=0.01, beta1=0.5, beta2=0.9, amsgrad=True),
    Adam(lr=0.01, weight_decay=0.1),
    Adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    Adam(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, amsgrad=True, eps=1e-6),
]


def variant_id(opt: Optimizer) -> str:
    defaults = type(opt).__dataclass_fields__
    changed = [
        f"{k}={v}"
        for k, v in opt.to_config().items()
        if k not in ("name", "lr") and v != defaults[k].default
    ]
    return "-".join([opt.name, *changed])


# --------------------------------------------------------------------------------------------
# update rules


@pytest.mark.parametrize("opt", VARIANTS, ids=variant_id)
def test_matches_hand_written_reference(opt):
    # the lr passed to step() must override opt.lr, so use a per-step list like a schedule
    expected, expected_slots = run_reference(opt, initial_params(), LRS)
    params, state = run_ours(opt, initial_params(), LRS)
    assert state.step == len(LRS)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14)
        assert not np.allclose(params[k], initial_params()[k])  # it really moved
    assert set(state.slots) == set(opt.slot_names())
    for slot in opt.slot_names():
        for k in params:
            np.testing.assert_allclose(
                state.slots[slot][k], expected_slots[k][slot], rtol=1e-12, atol=1e-14
            )


def test_default_lr_is_used_without_override():
    opt = Adam(lr=0.02)
    expected, _ = run_reference(opt, initial_params(), [0.02] * 3)
    params = initial_params()
    state = opt.init_state(params)
    for _ in range(3):
        opt.step(params, grad_fn(params), state)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12)


def _torch_optimizer(torch, opt: Optimizer, tensors):
    cfg = {k: v for k, v in opt.to_config().items() if k != "name"}
    if opt.name == "sgd":
        return torch.optim.SGD(tensors, foreach=False, **cfg)
    if opt.name == "rmsprop":
        return torch.optim.RMSprop(tensors, foreach=False, **cfg)
    if opt.name == "adadelta":
        return torch.optim.Adadelta(tensors, foreach=False, **cfg)
    betas = (cfg.pop("beta1"), cfg.pop("beta2"))
    return torch.optim.Adam(tensors, betas=betas, foreach=False, **cfg)


@pytest.mark.parametrize("opt", VARIANTS, ids=variant_id)
def test_matches_torch_optim(opt):
    torch = pytest.importorskip("torch")
    start = initial_params()
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    torch_opt = _torch_optimizer(torch, opt, list(tensors.values()))
    for lr in LRS:
        for group in torch_opt.param_groups:
            group["lr"] = lr
        grads = grad_fn({k: t.detach().numpy().copy() for k, t in tensors.items()})
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        torch_opt.step()
    params, _ = run_ours(opt, initial_params(), LRS)
    for k, t in tensors.items():
        np.testing.assert_allclose(params[k], t.detach().numpy(), rtol=1e-11, atol=1e-13)


# --------------------------------------------------------------------------------------------
# optimisation problems


def quadratic_problem():
    """0.5 (x - x*)' A (x - x*) with A of condition number 100 in a random basis."""
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    a = basis @ np.diag(np.logspace(0, 2, 10)) @ basis.T
    x_star = rng.normal(size=10)
    x0 = rng.normal(size=10)

    def loss(p):
        d = p["x"] - x_star
        return 0.5 * d @ a @ d

    def grad(p):
        return {"x": a @ (p["x"] - x_star)}

    return {"x": x0}, loss, grad


def logistic_problem():
    """Mean logistic loss on 200 examples; returns also the optimum found by Newton's method."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    w_true = rng.normal(size=5)
    y = (rng.random(200) < 1 / (1 + np.exp(-(x @ w_true + 0.3)))).astype(np.float64)

    def loss(p):
        z = x @ p["w"] + p["b"][0]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    def grad(p):
        z = x @ p["w"] + p["b"][0]
        r = (1 / (1 + np.exp(-z)) - y) / len(y)
        return {"w": x.T @ r, "b": np.array([r.sum()])}

    xa = np.hstack([x, np.ones((200, 1))])
    theta = np.zeros(6)
    for _ in range(25):
        s = 1 / (1 + np.exp(-xa @ theta))
        hessian = (xa.T * (s * (1 - s))) @ xa / 200
        theta -= np.linalg.solve(hessian, xa.T @ (s - y) / 200)
    best = loss({"w": theta[:5], "b": theta[5:]})
    return {"w": np.zeros(5), "b": np.zeros(1)}, loss, grad, best


def _minimise(opt, params, grad, steps=1000):
    state = opt.init_state(params)
    for _ in range(steps):
        opt.step(params, grad(params), state)
    return params


QUADRATIC_OPTIMIZERS = [
    SGD(lr=0.019),
    SGD(lr=0.015, momentum=0.9),
    SGD(lr=0.01, momentum=0.9, nesterov=True),
    RMSProp(lr=0.01),
    RMSProp(lr=0.01, centered=True, momentum=0.5),
    Adadelta(),
    Adam(lr=0.05),
    Adam(lr=0.05, amsgrad=True),
]


@pytest.mark.parametrize("opt", QUADRATIC_OPTIMIZERS, ids=variant_id)
def test_decreases_ill_conditioned_quadratic(opt):
    params, loss, grad = quadratic_problem()
    initial = loss(params)
    assert initial > 1.0
    params = _minimise(opt, params, grad)
    # 1000 steps reduce the loss by a factor of at least 1000
    assert loss(params) < 1e-3 * initial


LOGISTIC_OPTIMIZERS = [
    SGD(lr=0.3),
    SGD(lr=0.3, momentum=0.9, nesterov=True),
    RMSProp(lr=0.01),
    RMSProp(lr=0.01, centered=True, momentum=0.5),
    Adadelta(),
    Adam(lr=0.05),
    Adam(lr=0.05, weight_decay=1e-4, decoupled_weight_decay=True),
]


@pytest.mark.parametrize("opt", LOGISTIC_OPTIMIZERS, ids=variant_id)
def test_fits_logistic_regression(opt):
    params, loss, grad, best = logistic_problem()
    initial = loss(params)
    assert initial - best > 0.1
    params = _minimise(opt, params, grad)
    # within 1e-3 of the optimum (the gap starts above 0.1)
    assert loss(params) - best < 1e-3


# --------------------------------------------------------------------------------------------
# dtype, identity, grads untouched


@pytest.mark.parametrize("opt", VARIANTS, ids=variant_id)
def test_float32_in_place_and_grads_untouched(opt):
    params = initial_params(np.float32)
    originals = dict(params)
    state = opt.init_state(params)
    for lr in LRS:
        grads = {k: g.astype(np.float32) for k, g in grad_fn(params).items()}
        before = {k: g.copy() for k, g in grads.items()}
        opt.step(params, grads, state, lr=lr)
        for k in grads:
            np.testing.assert_array_equal(grads[k], before[k])
    expected, _ = run_reference(opt, initial_params(np.float32), LRS)
    for k, p in params.items():
        assert p is originals[k]
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, expected[k], rtol=2e-5, atol=2e-5)
    for per_param in state.slots.values():
        assert all(v.dtype == np.float32 for v in per_param.values())


def test_float64_grads_with_weight_decay_untouched():
    params = initial_params()
    grads = grad_fn(params)
    before = {k: g.copy() for k, g in grads.items()}
    for opt in (SGD(lr=0.1, weight_decay=0.5), Adam(weight_decay=0.5), Adadelta(weight_decay=1)):
        opt.step(params, grads, opt.init_state(params))
        for k in grads:
            np.testing.assert_array_equal(grads[k], before[k])


# --------------------------------------------------------------------------------------------
# optimizer state


@pytest.mark.parametrize("opt", VARIANTS, ids=variant_id)
def test_state_round_trip_through_npz(opt):
    params, state = run_ours(opt, initial_params(), LRS[:3])
    arrays = state.to_arrays()
    assert arrays["optim/step"].dtype == np.int64
    assert arrays["optim/step"].shape == ()
    assert int(arrays["optim/step"]) == 3
    expected_keys = {"optim/step"} | {f"optim/{s}/{k}" for s in opt.slot_names() for k in params}
    assert set(arrays) == expected_keys
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{f"model/{k}": v for k, v in params.items()})
    buffer.seek(0)
    with np.load(buffer) as loaded:
        restored = OptimizerState.from_arrays(loaded)
    assert restored.step == 3
    params_copy = {k: v.copy() for k, v in params.items()}
    run_ours(opt, params, LRS[3:], state)
    run_ours(opt, params_copy, LRS[3:], restored)
    for k in params:
        np.testing.assert_array_equal(params_copy[k], params[k])
    assert restored.step == state.step == len(LRS)


def test_to_arrays_copies_and_custom_prefix():
    opt = Adam()
    params, state = run_ours(opt, initial_params(), LRS[:2])
    arrays = state.to_arrays(prefix="opt.")
    assert "opt.step" in arrays and "opt.exp_avg/head.weight" in arrays
    saved = arrays["opt.exp_avg/head.weight"].copy()
    run_ours(opt, params, LRS[2:3], state)
    np.testing.assert_array_equal(arrays["opt.exp_avg/head.weight"], saved)
    assert not np.array_equal(state.slots["exp_avg"]["head.weight"], saved)
    restored = OptimizerState.from_arrays({**arrays, "optim/step": np.array(99)}, prefix="opt.")
    assert restored.step == 2


def test_copy_is_deep():
    opt = SGD(lr=0.1, momentum=0.9)
    params, state = run_ours(opt, initial_params(), LRS[:2])
    copied = state.copy()
    run_ours(opt, params, LRS[2:3], state)
    assert copied.step == 2 and state.step == 3
    assert not np.array_equal(
        copied.slots["momentum"]["bias_hh_l0"], state.slots["momentum"]["bias_hh_l0"]
    )


def test_from_arrays_errors():
    with pytest.raises(ValueError, match="optim/step"):
        OptimizerState.from_arrays({"optim/exp_avg/w": np.zeros(3)})
    with pytest.raises(ValueError, match="step"):
        OptimizerState.from_arrays({"optim/step": np.array(np.nan)})
    with pytest.raises(ValueError, match="optim/bogus"):
        OptimizerState.from_arrays({"optim/step": np.array(1), "optim/bogus": np.zeros(2)})


def test_weighted_average_of_two_states_is_a_state():
    opt = Adam(lr=0.01)
    params_a, state_a = run_ours(opt, initial_params(np.float32), LRS[:4])
    shifted = {k: v + np.float32(0.5) for k, v in initial_params(np.float32).items()}
    _, state_b = run_ours(opt, shifted, LRS[:2] * 3)  # 6 steps
    a, b = state_a.to_arrays(), state_b.to_arrays()
    weight = np.float64(0.3)
    averaged = {k: weight * a[k] + (1 - weight) * b[k] for k in a}
    assert averaged["optim/step"].dtype == np.float64  # 5.4 after averaging
    state = OptimizerState.from_arrays(averaged)
    assert state.step == 5
    m, v = {}, {}
    for k in params_a:
        m[k] = 0.3 * a[f"optim/exp_avg/{k}"].astype(np.float64)
        m[k] += 0.7 * b[f"optim/exp_avg/{k}"].astype(np.float64)
        v[k] = 0.3 * a[f"optim/exp_avg_sq/{k}"].astype(np.float64)
        v[k] += 0.7 * b[f"optim/exp_avg_sq/{k}"].astype(np.float64)
        assert state.slots["exp_avg"][k].dtype == np.float64  # as averaged, until the next step
        np.testing.assert_allclose(state.slots["exp_avg"][k], m[k], rtol=1e-12)
        np.testing.assert_allclose(state.slots["exp_avg_sq"][k], v[k], rtol=1e-12)

    # one more step from the averaged state follows Adam's equations with t = 6
    grads = {k: g.astype(np.float32) for k, g in grad_fn(params_a).items()}
    start = {k: p.astype(np.float64) for k, p in params_a.items()}
    opt.step(params_a, grads, state, lr=0.01)
    assert state.step == 6
    for k, p in params_a.items():
        g = grads[k].astype(np.float64)
        m_new = 0.9 * m[k] + 0.1 * g
        v_new = 0.999 * v[k] + 0.001 * g**2
        expected = start[k] - 0.01 * (m_new / (1 - 0.9**6)) / (
            np.sqrt(v_new / (1 - 0.999**6)) + 1e-8
        )
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, expected, rtol=1e-5, atol=1e-6)
        assert state.slots["exp_avg"][k].dtype == np.float32  # cast back to the param's dtype


def test_init_state_slots_per_config():
    params = initial_params()
    assert SGD(lr=0.1).init_state(params).slots == {}
    assert set(SGD(lr=0.1, momentum=0.5).init_state(params).slots) == {"momentum"}
    assert set(RMSProp().init_state(params).slots) == {"square_avg"}
    assert set(RMSProp(momentum=0.5, centered=True).init_state(params).slots) == {
        "square_avg",
        "momentum",
        "grad_avg",
    }
    assert set(Adadelta().init_state(params).slots) == {"square_avg", "acc_delta"}
    state = Adam(amsgrad=True).init_state(params)
    assert set(state.slots) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert state.step == 0
    for per_param in state.slots.values():
        assert set(per_param) == set(params)
        for k, value in per_param.items():
            assert value.shape == params[k].shape and not value.any()


def test_step_rejects_mismatched_inputs():
    opt = Adam()
    params = initial_params()
    state = opt.init_state(params)
    grads = grad_fn(params)
    with pytest.raises(ValueError, match="head.weight"):
        opt.step(params, {k: g for k, g in grads.items() if k != "head.weight"}, state)
    with pytest.raises(ValueError, match="extra"):
        opt.step(params, {**grads, "extra": np.zeros(1)}, state)
    with pytest.raises(ValueError, match=r"grads\['bias_hh_l0'\] has shape \(5,\)"):
        opt.step(params, {**grads, "bias_hh_l0": np.zeros(5)}, state)
    with pytest.raises(ValueError, match="exp_avg"):
        opt.step(params, grads, SGD(lr=0.1, momentum=0.9).init_state(params))
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.step(params, grads, state, lr=-0.1)
    with pytest.raises(ValueError, match="params"):
        opt.init_state({"w": np.zeros(3, dtype=np.int64)})
    assert state.step == 0
    np.testing.assert_array_equal(params["head.weight"], initial_params()["head.weight"])


# --------------------------------------------------------------------------------------------
# configs and validation


@pytest.mark.parametrize("opt", VARIANTS, ids=variant_id)
def test_optimizer_config_round_trip(opt):
    config = json.loads(json.dumps(opt.to_config()))
    assert config["name"] == opt.name
    assert optimizer_from_config(config) == opt


def test_make_optimizer():
    opt = make_optimizer("ADAM", lr=3e-4, amsgrad=True)
    assert opt == Adam(lr=3e-4, amsgrad=True)
    assert make_optimizer("RMSProp") == RMSProp()
    assert make_optimizer("sgd", lr=1) == SGD(lr=1.0)
    assert isinstance(make_optimizer("sgd", lr=1).lr, float)
    with pytest.raises(ValueError, match="adadelta, adam, rmsprop, sgd"):
        make_optimizer("lbfgs")
    with pytest.raises(ValueError, match="betas.*beta1, beta2"):
        make_optimizer("adam", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="lr"):
        make_optimizer("sgd", momentum=0.9)
    with pytest.raises(ValueError, match="name"):
        optimizer_from_config({"lr": 0.1})


@pytest.mark.parametrize(
    "factory, kwargs, message",
    [
        (SGD, {"lr": -1}, "lr must be > 0, got -1"),
        (SGD, {"lr": 0}, "lr must be > 0"),
        (SGD, {"lr": float("nan")}, "lr must be finite"),
        (SGD, {"lr": "0.1"}, "lr must be a real number"),
        (SGD, {"lr": 0.1, "momentum": -0.1}, "momentum"),
        (SGD, {"lr": 0.1, "momentum": 1.0}, "momentum"),
        (SGD, {"lr": 0.1, "dampening": 1.5}, "dampening"),
        (SGD, {"lr": 0.1, "nesterov": True}, "nesterov"),
        (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True}, "nesterov"),
        (SGD, {"lr": 0.1, "nesterov": 1}, "nesterov"),
        (SGD, {"lr": 0.1, "weight_decay": -1e-4}, "weight_decay"),
        (RMSProp, {"alpha": 1.0}, "alpha"),
        (RMSProp, {"eps": 0}, "eps"),
        (RMSProp, {"momentum": 2}, "momentum"),
        (RMSProp, {"centered": "yes"}, "centered"),
        (Adadelta, {"rho": -0.5}, "rho"),
        (Adadelta, {"eps": -1}, "eps"),
        (Adadelta, {"lr": -1}, "lr"),
        (Adam, {"beta1": 1.0}, "beta1"),
        (Adam, {"beta2": -0.1}, "beta2"),
        (Adam, {"weight_decay": float("inf")}, "weight_decay"),
        (Adam, {"amsgrad": None}, "amsgrad"),
        (Adam, {"decoupled_weight_decay": "no"}, "decoupled_weight_decay"),
    ],
)
def test_optimizer_bad_arguments(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_optimizers_are_frozen():
    opt = Adam()
    with pytest.raises(AttributeError):
        opt.lr = 0.1


# --------------------------------------------------------------------------------------------
# gradient clipping


def _grads(dtype=np.float64):
    return {
        "a": np.array([[3.0, -4.0], [0.0, 12.0]], dtype=dtype),  # sum of squares 169
        "b": np.array([84.0], dtype=dtype),  # 7056 -> total 7225 = 85**2
    }


def test_clip_grad_norm_scales_to_max_norm():
    grads = _grads()
    identities = {k: id(g) for k, g in grads.items()}
    norm = clip_grad_norm(grads, 17.0)
    assert norm == 85.0
    scale = 17.0 / (85.0 + 1e-6)
    np.testing.assert_allclose(grads["a"], _grads()["a"] * scale, rtol=1e-15)
    np.testing.assert_allclose(grads["b"], _grads()["b"] * scale, rtol=1e-15)
    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    assert total == pytest.approx(17.0, rel=1e-7)
    assert total < 17.0
    assert {k: id(g) for k, g in grads.items()} == identities


def test_clip_grad_norm_leaves_small_grads_alone():
    grads = _grads()
    assert clip_grad_norm(grads, 85.0) == 85.0  # equal: not above the threshold
    assert clip_grad_norm(grads, 100.0) == 85.0
    for k, g in _grads().items():
        np.testing.assert_array_equal(grads[k], g)


def test_clip_grad_norm_float32_accuracy_and_dtype():
    rng = np.random.default_rng(0)
    grads = {"w": rng.normal(size=(300, 300)).astype(np.float32), "b": np.ones(5, np.float32)}
    exact = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    norm = clip_grad_norm(grads, 1.0)
    assert isinstance(norm, float)
    assert norm == pytest.approx(exact, rel=1e-12)
    assert grads["w"].dtype == np.float32 and grads["b"].dtype == np.float32
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert total == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_huge_but_finite_values():
    grads = {"a": np.array([3e200, 4e200]), "b": np.array([0.0])}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5e200, rel=1e-12)
    np.testing.assert_allclose(grads["a"], [0.6, 0.8], rtol=1e-12)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_non_finite_leaves_grads(bad):
    grads = _grads()
    grads["b"][0] = bad
    norm = clip_grad_norm(grads, 1.0)
    assert not math.isfinite(norm)
    np.testing.assert_array_equal(grads["a"], _grads()["a"])


def test_clip_grad_value():
    grads = _grads(np.float32)
    a = grads["a"]
    clip_grad_value(grads, 3.5)
    assert grads["a"] is a and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[3.0, -3.5], [0.0, 3.5]])
    np.testing.assert_array_equal(grads["b"], [3.5])


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan])
def test_clipping_bad_thresholds(value):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(_grads(), value)
    with pytest.raises(ValueError, match="clip_value"):
        clip_grad_value(_grads(), value)


# --------------------------------------------------------------------------------------------
# schedules


def test_constant_and_step_schedules():
    assert [ConstantLR(0.1).lr_at(s) for s in (0, 1, 1000)] == [0.1, 0.1, 0.1]
    schedule = StepLR(0.1, step_size=3, gamma=0.5)
    values = [schedule.lr_at(s) for s in range(8)]
    assert values == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-15)
    assert StepLR(1.0, step_size=10).lr_at(25) == pytest.approx(0.01, rel=1e-15)


def test_exponential_schedule():
    schedule = ExponentialLR(2.0, gamma=0.9)
    assert schedule.lr_at(0) == 2.0
    assert schedule.lr_at(3) == pytest.approx(2.0 * 0.729, rel=1e-15)


def test_cosine_schedule():
    schedule = CosineLR(1.0, total_steps=10, min_lr=0.1)
    assert schedule.lr_at(0) == 1.0
    assert schedule.lr_at(5) == pytest.approx(0.55, rel=1e-15)
    assert schedule.lr_at(10) == 0.1
    assert [schedule.lr_at(s) for s in range(10, 30)] == [0.1] * 20  # stays at min_lr
    # a quarter of the way: 0.1 + 0.9 * (1 + cos(pi / 4)) / 2
    assert CosineLR(1.0, 8, 0.1).lr_at(2) == pytest.approx(0.1 + 0.45 * (1 + 0.5**0.5), rel=1e-14)
    values = [schedule.lr_at(s) for s in range(11)]
    assert all(x > y for x, y in zip(values, values[1:], strict=False))
    assert CosineLR(0.5, 4).lr_at(4) == 0.0


def test_warmup_schedule():
    schedule = WarmupLR(ConstantLR(0.1), warmup_steps=4)
    values = [schedule.lr_at(s) for s in range(6)]
    assert values == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-15, abs=0)
    half = WarmupLR(ConstantLR(0.2), warmup_steps=2, start_factor=0.5)
    assert [half.lr_at(s) for s in range(3)] == pytest.approx([0.1, 0.15, 0.2], rel=1e-15)
    cosine = CosineLR(1.0, total_steps=10, min_lr=0.1)
    warm = WarmupLR(cosine, warmup_steps=3, start_factor=0.25)
    assert warm.lr_at(0) == 0.25
    assert warm.lr_at(1) == pytest.approx(0.5)
    assert warm.lr_at(3) == 1.0
    assert warm.lr_at(8) == cosine.lr_at(5)
    assert warm.lr_at(100) == 0.1
    assert WarmupLR(ConstantLR(0.3), warmup_steps=0).lr_at(0) == 0.3


SCHEDULES = [
    ConstantLR(0.01),
    StepLR(0.1, step_size=5, gamma=0.3),
    ExponentialLR(0.1, gamma=0.99),
    CosineLR(0.1, total_steps=100, min_lr=1e-4),
    WarmupLR(CosineLR(0.1, total_steps=100), warmup_steps=10, start_factor=0.1),
    WarmupLR(WarmupLR(ConstantLR(1.0), 2), 3),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_schedule_config_round_trip(schedule):
    config = json.loads(json.dumps(schedule.to_config()))
    assert config["name"] == schedule.name
    restored = schedule_from_config(config)
    assert restored == schedule
    assert [restored.lr_at(s) for s in range(0, 120, 7)] == [
        schedule.lr_at(s) for s in range(0, 120, 7)
    ]


def test_make_schedule():
    assert make_schedule("Cosine", lr=0.1, total_steps=5) == CosineLR(0.1, 5)
    warm = make_schedule("warmup", base={"name": "constant", "lr": 0.5}, warmup_steps=2)
    assert warm == WarmupLR(ConstantLR(0.5), 2)
    assert warm.lr_at(1) == 0.25
    with pytest.raises(ValueError, match="constant, cosine, exponential, step, warmup"):
        make_schedule("linear", lr=0.1)
    with pytest.raises(ValueError, match="step_sizes.*lr, step_size, gamma"):
        make_schedule("step", lr=0.1, step_sizes=3)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("cosine", lr=0.1)
    with pytest.raises(ValueError, match="name"):
        schedule_from_config({"lr": 0.1})


@pytest.mark.parametrize(
    "factory, kwargs, message",
    [
        (ConstantLR, {"lr": 0}, "lr must be > 0, got 0"),
        (StepLR, {"lr": 0.1, "step_size": 0}, "step_size must be >= 1"),
        (StepLR, {"lr": 0.1, "step_size": 2.5}, "step_size must be an int"),
        (StepLR, {"lr": 0.1, "step_size": 2, "gamma": 0}, "gamma"),
        (ExponentialLR, {"lr": 0.1, "gamma": -0.5}, "gamma"),
        (CosineLR, {"lr": 0.1, "total_steps": 0}, "total_steps"),
        (CosineLR, {"lr": 0.1, "total_steps": 10, "min_lr": 0.2}, "min_lr"),
        (CosineLR, {"lr": 0.1, "total_steps": 10, "min_lr": -0.1}, "min_lr"),
        (WarmupLR, {"base": 0.1, "warmup_steps": 10}, "base"),
        (WarmupLR, {"base": ConstantLR(0.1), "warmup_steps": -1}, "warmup_steps"),
        (WarmupLR, {"base": ConstantLR(0.1), "warmup_steps": 3, "start_factor": 1.5}, "start"),
    ],
)
def test_schedule_bad_arguments(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_lr_at_rejects_bad_steps(step):
    with pytest.raises(ValueError, match="step"):
        CosineLR(0.1, 10).lr_at(step)
