"""Where the addition model fails on the held-out source length (issue 16), one process.

    python -m bench.seq2seq_addition_errors [--seed 0] [--attention luong]

Trains the ``addition`` model of ``bench/seq2seq.py`` (its settings: target written backwards,
the held-out-length test split of 6-character sources) and scores greedy decoding of the test
split by the operand lengths of each source (``(len(a), len(b))`` for ``a+b=``), next to the
pairs the training split holds, and counts which digit places (0 = units) are wrong in each
wrong sum. Logs the tables and 30 examples; writes nothing.
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
from collections.abc import Sequence

from bench import seq2seq

logger = logging.getLogger("bench.seq2seq_addition_errors")


def operand_lengths(source: str) -> tuple[int, int]:
    """``(len(a), len(b))`` of a source ``"a+b="``."""
    first, second = source.rstrip("=").split("+")
    return len(first), len(second)


def wrong_places(target: str, decoded: str) -> tuple[int, ...]:
    """Digit places (0 = units) where ``decoded`` differs from ``target``, a missing or extra
    digit counting as wrong."""
    want, got = target[::-1], decoded[::-1]
    places = range(max(len(want), len(got)))
    return tuple(i for i in places if i >= len(want) or i >= len(got) or want[i] != got[i])


def main(argv: Sequence[str] | None = None) -> int:
    from sparklstm.model.seq2seq import Seq2SeqModel

    parser = argparse.ArgumentParser(prog="python -m bench.seq2seq_addition_errors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attention", choices=("luong", "none"), default="luong")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    config = seq2seq.CONFIGS["addition"]
    data = seq2seq.transduction_splits("addition", config, False)
    vocab = data["vocabulary"]
    (sources, targets), (test_sources, test_targets) = data["train"], data["eval"]
    flip = bool(config["reverse_target"])
    model = Seq2SeqModel(
        source_vocab_size=vocab.size,
        target_vocab_size=vocab.size,
        attention=args.attention,
        seed=args.seed,
        **config["model"],
    )
    model.fit(
        sources,
        [t[::-1] for t in targets] if flip else targets,
        seed=args.seed,
        **config["training"],
    )
    longest = max(len(t) for t in test_targets) + 1
    decoded = model.greedy_decode(test_sources, max_len=longest).sequences
    right: collections.Counter = collections.Counter()
    seen: collections.Counter = collections.Counter()
    places: collections.Counter = collections.Counter()
    examples = []
    for source_ids, target_ids, ids in zip(test_sources, test_targets, decoded, strict=True):
        source, target = vocab.decode(source_ids), vocab.decode(target_ids)
        sum_text = vocab.decode(ids[::-1] if flip else ids)
        pair = operand_lengths(source)
        seen[pair] += 1
        right[pair] += sum_text == target
        if sum_text != target:
            places[wrong_places(target, sum_text)] += 1
        examples.append((source, target, sum_text))
    train_pairs = collections.Counter(operand_lengths(vocab.decode(s)) for s in sources)
    logger.info("training operand-length pairs: %s", sorted(train_pairs.items()))
    for pair in sorted(seen):
        logger.info(
            "test pair %s: %d of %d exact (%.1f%%)",
            pair,
            right[pair],
            seen[pair],
            100 * right[pair] / seen[pair],
        )
    logger.info("exact overall: %.1f%%", 100 * sum(right.values()) / sum(seen.values()))
    logger.info("wrong digit places (0 = units), most common: %s", places.most_common())
    logger.info("examples (source, target, decoded): %s", examples[:30])
    return 0


if __name__ == "__main__":
    sys.exit(main())
