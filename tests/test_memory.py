"""Training and Spark tasks keep the kernels' large temporaries on the heap (sparklstm.memory).

The effect is checked where glibc serves a block from, not by timing or page faults (those
depend on the host: NumPy advises transparent huge pages for arrays of 4 MiB and more). Each
check runs in a fresh process whose glibc mmap threshold is pinned at its 128 KiB default (as
measured in Spark's Python workers), and reads glibc's ``mallinfo2()`` while a 4 MiB array
lives: before ``keep_large_allocations_on_heap()`` the block is a fresh mapping (``hblkhd``
grows), after it the block comes from the heap (``uordblks`` grows, ``hblkhd`` does not)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt thresholds and mallinfo are glibc features",
)

BLOCK = 4 * 2**20  # the size where_block_goes() allocates

# Defines where_block_goes() -> (growth of mmapped bytes, growth of heap bytes in use).
MALLINFO = """
import ctypes
import numpy as np

_libc = ctypes.CDLL(None)
_mallinfo = getattr(_libc, "mallinfo2", None) or _libc.mallinfo  # mallinfo2: glibc >= 2.33
_field = ctypes.c_size_t if _mallinfo.__name__ == "mallinfo2" else ctypes.c_int


class _Mallinfo(ctypes.Structure):
    _fields_ = [
        (name, _field)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]


_mallinfo.argtypes, _mallinfo.restype = [], _Mallinfo


def where_block_goes(size=4 * 2**20):
    before = _mallinfo()
    block = np.empty(size // 8)
    after = _mallinfo()
    del block
    return after.hblkhd - before.hblkhd, after.uordblks - before.uordblks
"""


def _run(probe: str) -> dict:
    """Run ``probe`` (after MALLINFO) in a fresh interpreter with the threshold pinned; return
    the JSON object it prints last."""
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",  # glibc's default, but fixed (no dynamic raise)
        "NUMPY_MADVISE_HUGEPAGE": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", MALLINFO + probe],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mapped(growth: list[int]) -> bool:
    mmapped, heap = growth
    return mmapped >= BLOCK and heap < BLOCK


def _on_heap(growth: list[int]) -> bool:
    mmapped, heap = growth
    return mmapped == 0 and heap >= BLOCK


def test_large_blocks_come_from_the_heap_after_the_call():
    seen = _run(
        """
import json
from sparklstm.memory import keep_large_allocations_on_heap

pinned = where_block_goes()
done = keep_large_allocations_on_heap()
print(json.dumps({"pinned": pinned, "done": done, "after": where_block_goes()}))
"""
    )
    assert seen["done"] is True
    assert _mapped(seen["pinned"]), seen  # the pinned threshold: a fresh mapping per block
    assert _on_heap(seen["after"]), seen


# A tiny partition, encoded and decoded by the functions the trainer caches chunks with, and a
# payload as the round task decodes it (sparklstm.spark.wire.decode_payload).
TASK = """
import json
import types

import numpy as np

from sparklstm import SequenceModel
from sparklstm.data.arrow import numpy_to_arrow
from sparklstm.data.synthetic import noisy_sines
from sparklstm.spark import rounds
from sparklstm.spark.config import DistributedConfig
from sparklstm.memory import keep_large_allocations_on_heap
from sparklstm.spark.partitions import ChunkEncoding, decode_chunk, encode_partition
from sparklstm.spark.schema import Columns

x, y, lengths = noisy_sines(64, 10, 3, np.random.default_rng(0), min_len=4)
encoding = ChunkEncoding(
    columns=Columns(), dtype="float32", tokens=False, per_step_labels=False,
    classification=True, num_features=1, chunk_rows=64, batch_size=16,
)
encoded = encode_partition(numpy_to_arrow(x, y, lengths).to_batches(), encoding)
chunks = [decode_chunk(row) for batch in encoded for row in batch.to_pylist()]
model = SequenceModel(input_size=1, hidden_sizes=[8], output_size=3, seed=0)
params = {name: value.copy() for name, value in model.params.items()}
config = DistributedConfig(local_steps=2, batch_size=16, seed=0)
optimizer = config.make_optimizer()
state = optimizer.init_state(params).to_arrays()
spec = rounds.RoundSpec(
    model_config=model.config.to_dict(),
    optimizer_config=optimizer.to_config(),
    schedule_config=config.make_schedule(1, 2).to_config(),
    param_names=tuple(sorted(params)),
    state_names=tuple(sorted(k for k in state if k != "optim/step")),
    chunk_rows=(tuple(len(chunk[1]) for chunk in chunks),),
    batch_size=16, seed=0, local_steps=2, rounds_per_epoch=2, shuffle=True, bucket=True,
    clip_norm=None, clip_value=None, state_policy="average",
)
payload = {"params": params, "state": state, "states": {}}


def train(round_index):
    (result,) = rounds.train_partition(
        0, enumerate(chunks), spec=spec, round_index=round_index, payload=payload
    )
    return {"examples": result.examples, "steps": result.steps}


def evaluate(round_index):
    (totals,) = rounds.evaluate_partition(
        0, iter(chunks), model_config=spec.model_config, payload=payload, batch_size=256
    )
    return {"count": totals["count"]}


def report(task):
    before = where_block_goes()
    first = task(0)
    after = where_block_goes()
    second = task(1)
    calls = keep_large_allocations_on_heap.cache_info()
    print(json.dumps({
        "before": before, "after": after, "first": first, "second": second,
        "misses": calls.misses, "hits": calls.hits,
    }))
"""


@pytest.mark.parametrize(
    "task,did",
    [
        ("train", {"examples": 32, "steps": 2}),  # local_steps=2 batches of 16
        ("evaluate", {"count": 64}),
    ],
)
def test_every_task_function_moves_large_blocks_to_the_heap_once_per_process(task, did):
    """train_partition and evaluate_partition, called as the trainer calls them, leave the
    process serving 4 MiB blocks from the heap; the mallopt calls run once per process (the
    setting is ``functools.cache``d), however many tasks the Python worker runs."""
    seen = _run(TASK + f"report({task})\n")
    assert seen["first"] == did and seen["second"] == did  # the task really ran, twice
    assert _mapped(seen["before"]), seen  # importing sparklstm and building a model: no change
    assert _on_heap(seen["after"]), seen  # the first task set it
    assert (seen["misses"], seen["hits"]) == (1, 1)  # both tasks asked; the first one did it


ONE_PROCESS = """
import json

import numpy as np

from sparklstm import SequenceModel
from sparklstm.data.synthetic import noisy_sines

x, y, lengths = noisy_sines(32, 10, 3, np.random.default_rng(0), min_len=4)
model = SequenceModel(input_size=1, hidden_sizes=[8], output_size=3, seed=0)
before = where_block_goes()
if MODE == "fit":
    history = model.fit(x, y, lengths, epochs=1, batch_size=16, progress=False)
    ran = len(history.rows)
else:
    streams = [np.sin(np.arange(40.0))[:, None] for _ in range(2)]
    targets = [np.cos(np.arange(40.0))[:, None] for _ in range(2)]
    stream_model = SequenceModel(input_size=1, hidden_sizes=[8], output_size=1,
                                 task="regression", head="all", seed=0)
    history = stream_model.fit_streams(streams, targets, epochs=1, forward_length=10,
                                       progress=False)
    ran = len(history.rows)
print(json.dumps({"before": before, "after": where_block_goes(), "ran": ran}))
"""


@pytest.mark.parametrize("mode", ["fit", "fit_streams"])
def test_one_process_training_moves_large_blocks_to_the_heap(mode):
    """One-process ``fit`` and ``fit_streams`` set the thresholds too: glibc's own adaptation
    fails once a step frees more than twice its largest block, and blocks above 32 MiB are
    mapped afresh whatever it learnt."""
    seen = _run(f"MODE = {mode!r}\n" + ONE_PROCESS)
    assert seen["ran"] == 1
    assert _mapped(seen["before"]), seen
    assert _on_heap(seen["after"]), seen
