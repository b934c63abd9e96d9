"""Issue 18, avoidable work: a network's first layer no longer computes the gradient with
respect to its float inputs, which nothing uses (a GEMM as large as dW_ih). Times one
forward + backward of a one-layer LSTM model at the kernel benchmark's medium and large shapes,
the old work (input gradient forced on) and the new alternated 12 times in one process, and
prints the medians and their ratio.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m bench.first_layer_input_grad
"""

from __future__ import annotations

import time

import numpy as np

import sparklstm.nn.recurrent as recurrent
from sparklstm import SequenceModel

SHAPES = ((64, 50, 32, 128), (256, 100, 64, 256))  # (batch, time, inputs, hidden)


def median_times(shape: tuple[int, int, int, int], dtype: str, repeats: int = 12):
    batch, steps, inputs, hidden = shape
    model = SequenceModel(
        input_size=inputs, hidden_sizes=[hidden], head="last", output_size=4, dtype=dtype, seed=0
    )
    rng = np.random.default_rng(0)
    data = model.prepare(
        rng.normal(size=(batch, steps, inputs)).astype(dtype), rng.integers(0, 4, size=batch)
    )
    original = recurrent.RecurrentStack.backward_packed

    def with_input_grad(self, *args, **kwargs):
        kwargs["need_input_grad"] = True
        return original(self, *args, **kwargs)

    times: dict[str, list[float]] = {"old": [], "new": []}
    try:
        for _ in range(repeats):
            for name in times:
                recurrent.RecurrentStack.backward_packed = (
                    with_input_grad if name == "old" else original
                )
                started = time.perf_counter()
                model.batch_loss_and_grads(data, training=False)
                times[name].append(time.perf_counter() - started)
    finally:
        recurrent.RecurrentStack.backward_packed = original
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> int:
    for shape in SHAPES:
        found = median_times(shape, "float32")
        batch, steps, inputs, hidden = shape
        print(
            f"B{batch} T{steps} I{inputs} H{hidden} float32: forward + backward median "
            f"old {found['old'] * 1e3:.1f} ms, new {found['new'] * 1e3:.1f} ms, "
            f"new/old {found['new'] / found['old']:.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
