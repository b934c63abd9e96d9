"""A model of about 200 MB trains and predicts on Spark (prints figures; not a test).

LSTM(3500) on one feature, float32: 49 million parameters, 187 MiB. Its parameters are above
the 64 MiB inline limit, so each round's parameters and the inference model travel as session
files (``sparklstm.spark.transport``). Two rounds of one SGD step on two partitions (optimizer
state ``reset``, so each result is one copy of the parameters) on ``local[2]`` with a 3 GiB
driver, then ``predict_dataframe``. Prints round times, the workers whose results came back
(both must) and the driver's peak memory.

Usage::

    python -m bench.large_model [--hidden 3500] [--driver-memory 3g]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=3500)
    parser.add_argument("--driver-memory", default="3g")
    args = parser.parse_args(argv)

    from sparklstm.data.arrow import numpy_to_arrow
    from sparklstm.data.synthetic import noisy_sines
    from sparklstm.spark.inference import predict_dataframe
    from sparklstm.spark.session import get_session
    from sparklstm.spark.trainer import fit_distributed

    spark = get_session(
        "bench-large-model",
        master="local[2]",
        conf={"spark.driver.memory": args.driver_memory},
        log_level="ERROR",
    )
    x, y, lengths = noisy_sines(64, 5, 2, np.random.default_rng(0), min_len=5)
    df = spark.createDataFrame(numpy_to_arrow(x, y, lengths))
    model_config = {"input_size": 1, "hidden_sizes": [args.hidden], "output_size": 2, "seed": 0}
    options = {
        "rounds": 2,
        "local_steps": 1,
        "batch_size": 8,
        "num_partitions": 2,
        "state_policy": "reset",
        "optimizer": "sgd",
        "lr": 0.01,
    }
    started = time.perf_counter()
    model, history = fit_distributed(df, model_config, options, progress=False)
    trained = time.perf_counter() - started
    size = sum(v.nbytes for v in model.params.values())
    count = sum(v.size for v in model.params.values())
    print(f"model: {count:,} parameters, {size / 2**20:.0f} MiB")
    for row in history.rows:
        print(
            f"round {row['round']}: {row['seconds']:.1f} s, {row['workers']} workers answered, "
            f"{row['results_collected']} results collected"
        )
    print(f"training with preparation: {trained:.1f} s")
    started = time.perf_counter()
    out = predict_dataframe(model, df).select("probability").toArrow()
    probability = np.array(out.column("probability").to_pylist())
    print(
        f"predicted {len(probability)} rows in {time.perf_counter() - started:.1f} s "
        f"(probabilities sum to 1: {bool(np.allclose(probability.sum(1), 1))})"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"driver Python peak RSS: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
