"""The streams benchmark harness runs end to end on tiny settings and writes what it prints
(the README's stream figures come from it at full size)."""

from __future__ import annotations

import json

from bench import streams


def test_memory_command_measures_each_length_in_its_own_process(tmp_path, capsys):
    out = tmp_path / "memory.json"
    assert streams.main(["memory", "--steps", "300", "900", "--hidden", "4", "--length", "50",
                         "--out", str(out)]) == 0  # fmt: skip
    document = json.loads(out.read_text())
    rows = document["results"]
    assert [row["steps"] for row in rows] == [300, 900]
    for row in rows:
        # A Python process with NumPy: tens of MiB, far below a GiB.
        assert 10 * 2**20 < row["training_peak_rss_bytes"] < 2**30
        assert 10 * 2**20 < row["scoring_peak_rss_bytes"] < 2**30
        assert row["stream_bytes_on_disk"] == 4 * (row["steps"] + 1)
        assert 0 < row["bits_per_step_untrained"] < 8  # 16 ids: about log2(16) = 4 untrained
    assert document["command"].startswith("python -m bench.streams memory")
    assert "900 steps" in capsys.readouterr().out


def test_kjv_command_trains_both_ways_on_the_same_characters(tmp_path):
    out = tmp_path / "kjv.json"
    settings = ["--hidden", "8", "--epochs", "1", "--streams", "4", "--length", "20"]
    sizes = ["--max-chars", "4001", "--test-chars", "3000"]
    assert streams.main(["kjv", *settings, *sizes, "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"windows", "carried"}
    assert (
        results["windows"]["train_chars_per_epoch"] == results["carried"]["train_chars_per_epoch"]
    )
    assert results["windows"]["updates_per_epoch"] == 50
    for row in results.values():
        for key in ("test_bits_per_char_zero_state_windows", "test_bits_per_char_carried_state"):
            assert 1.0 < row[key] < 8.0
