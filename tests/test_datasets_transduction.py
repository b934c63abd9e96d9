"""The ``addition`` and ``dates`` transduction datasets of ``jobs.make_data`` and their
vocabulary (:mod:`sparklstm.data.vocabulary`): every row checked through a separate path
(int arithmetic, ``datetime.strptime``), determinism, held-out source lengths, the command."""

from __future__ import annotations

import datetime
import json
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparklstm.data.vocabulary import END, PAD, START, CharVocabulary
from sparklstm.datasets import transduction
from sparklstm.datasets.generate import BLOCK_ROWS, held_out, write_dataset
from tests.test_make_data import run

IDS = pa.list_(pa.int32())


def rows_of(out, split):
    """``[(source, target)]`` of a split, decoded with the dataset's vocabulary.json."""
    vocab = CharVocabulary.load(out / "vocabulary.json")
    data = pq.read_table(out / split)
    assert data.schema.names == ["source", "target"]
    assert all(field.type.equals(IDS) for field in data.schema)
    sources, targets = data.column("source").to_pylist(), data.column("target").to_pylist()
    for ids in sources + targets:
        assert ids and min(ids) > END  # characters only: no pad, start or end token
    return [(vocab.decode(s), vocab.decode(t)) for s, t in zip(sources, targets, strict=True)]


def source_length_counts(rows):
    return Counter(len(source) for source, _ in rows)


# ----------------------------------------------------------------------------- vocabulary
def test_vocabulary_round_trip(tmp_path):
    vocab = CharVocabulary("0123456789+=")
    assert (PAD, START, END) == (0, 1, 2)
    assert vocab.size == len(vocab) == 15
    assert vocab.tokens[:4] == ("<pad>", "<start>", "<end>", "0")
    ids = vocab.encode("3+45=")
    assert ids.dtype == np.int32 and ids.tolist() == [6, 13, 7, 8, 14]
    assert vocab.encode("48", start=True, end=True).tolist() == [START, 7, 11, END]
    assert vocab.decode(ids) == "3+45="
    assert vocab.decode([START, 7, 11, END, 9, 9, PAD]) == "48"  # stops at <end>
    assert vocab.decode(np.array([PAD, 7, START, 11, PAD])) == "48"  # skips <pad>, <start>
    assert vocab.decode([]) == "" and vocab.encode("").tolist() == []
    assert CharVocabulary.from_json(vocab.to_json()) == vocab
    vocab.save(tmp_path / "v.json")
    assert CharVocabulary.load(tmp_path / "v.json") == vocab
    document = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))
    assert document == {"type": "CharVocabulary", "tokens": list(vocab.tokens)}
    with pytest.raises(ValueError, match=r"'x' \(position 2\) is not in the vocabulary"):
        vocab.encode("12x")
    with pytest.raises(ValueError, match=r"ids\[1\] = 15 is outside the vocabulary \[0, 15\)"):
        vocab.decode([3, 15])
    assert vocab.decode([3, END, 99]) == "0"  # nothing after <end> is read
    with pytest.raises(ValueError, match="repeats characters"):
        CharVocabulary("0120")


def _tokens(*chars):
    return {"type": "CharVocabulary", "tokens": ["<pad>", "<start>", "<end>", *chars]}


@pytest.mark.parametrize(
    "contents,message",
    [
        ("{", "not valid JSON: Expecting property name"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"tokens": ["<pad>"]}', "expected exactly the keys ['type', 'tokens'], got ['tokens']"),
        (
            json.dumps({"type": "CharVocab", "tokens": []}),
            "type = 'CharVocab': expected 'CharVocabulary'",
        ),
        (json.dumps({"type": "CharVocabulary", "tokens": "abc"}), "tokens must be a list"),
        (json.dumps(_tokens(1, "a")), "tokens must be a list of strings"),
        (
            json.dumps({"type": "CharVocabulary", "tokens": ["<start>", "<pad>", "<end>", "a"]}),
            "tokens must start with ['<pad>', '<start>', '<end>'] (ids 0, 1, 2)",
        ),
        (json.dumps(_tokens("a", "bc")), "tokens[4] = 'bc': must be exactly one character"),
        (json.dumps(_tokens("a", "b", "a")), "tokens[5] = 'a' repeats tokens[3]"),
    ],
)
def test_vocabulary_file_contents_are_checked(tmp_path, contents, message):
    path = tmp_path / "vocabulary.json"
    path.write_text(contents, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        CharVocabulary.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


# ----------------------------------------------------------------------------- addition
def test_every_addition_row_is_a_correct_sum(tmp_path):
    out = tmp_path / "addition"
    written = write_dataset("addition", out, rows=2000, seed=3)
    assert [(s.name, s.rows) for s in written.splits] == [("train", 1600), ("test", 400)]
    assert CharVocabulary.load(out / "vocabulary.json") == CharVocabulary("0123456789+=")
    digits = Counter()
    for split in ("train", "test"):
        for source, target in rows_of(out, split):
            assert source.endswith("=") and source.count("+") == 1
            a, b = source[:-1].split("+")
            for number in (a, b, target):
                assert number.isdigit() and (number == "0" or not number.startswith("0"))
            assert 1 <= len(a) <= 3 and 1 <= len(b) <= 3
            assert int(a) + int(b) == int(target)
            digits.update((len(a), len(b)))
    # Digit counts are uniform: about 4000 / 3 operands each.
    assert set(digits) == {1, 2, 3} and min(digits.values()) > 1200


def test_addition_with_more_digits(tmp_path):
    write_dataset("addition", tmp_path, rows=300, max_digits=18, held_out_lengths="")
    rows = rows_of(tmp_path, "train") + rows_of(tmp_path, "test")
    for source, target in rows:
        a, b = source[:-1].split("+")
        assert int(a) + int(b) == int(target)
    assert max(len(source) for source, _ in rows) > 30  # operands of up to 18 digits


# ----------------------------------------------------------------------------- dates
STRPTIME_FORMATS = (
    "%d %B %Y",
    "%B %d, %Y",
    "%d/%m/%Y",
    "%b %d %y",
    "%Y %B %d",
    "%A, %d %B %Y",
    "%d %b %Y",
    "%d.%m.%Y",
)


def parse_date(source, min_year):
    """The date of ``source`` by ``datetime.strptime`` and the formats that read it."""
    found = {}
    for form in STRPTIME_FORMATS:
        try:
            date = datetime.datetime.strptime(source, form).date()
        except ValueError:
            continue
        if "%y" in form:  # the one year of min_year .. min_year + 99 with these last digits
            date = date.replace(year=min_year + (date.year - min_year) % 100)
        if "%A" in form:  # strptime does not check the weekday
            assert source.split(",")[0] == date.strftime("%A")
        found[form] = date
    assert len(set(found.values())) == 1, (source, found)  # one reading
    return next(iter(found.values())), set(found)


@pytest.mark.parametrize("years", [(1950, 2049), (1999, 2001)])
def test_every_date_row_targets_the_iso_form_of_its_source(tmp_path, years):
    low, high = years
    out = tmp_path / "dates"
    write_dataset("dates", out, rows=1500, seed=1, min_year=low, max_year=high)
    formats, seen_years = Counter(), set()
    for split in ("train", "test"):
        for source, target in rows_of(out, split):
            date, forms = parse_date(source, low)
            assert target == date.isoformat()
            assert low <= date.year <= high
            seen_years.add(date.year)
            formats.update(forms)
    assert set(formats) == set(STRPTIME_FORMATS)  # every format is used
    assert len(seen_years) > 90 if high - low > 90 else seen_years == set(range(low, high + 1))


def test_date_source_lengths_are_those_the_formats_give():
    every = set()
    day = datetime.date(2000, 1, 1)
    while day.year < 2004:
        every.update(len(write(day)) for _, write in transduction.DATE_FORMATS)
        day += datetime.timedelta(days=1)
    assert transduction.source_lengths("dates", {}) == sorted(every) == list(range(8, 29))
    example = datetime.date(2021, 3, 5)
    assert [write(example) for _, write in transduction.DATE_FORMATS] == [
        name for name, _ in transduction.DATE_FORMATS
    ]


# ----------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("task", ["addition", "dates"])
@pytest.mark.parametrize("held", [None, ""])
def test_rows_depend_on_the_options_rows_and_seed_only(tmp_path, monkeypatch, task, held):
    monkeypatch.setattr(transduction, "BLOCK_ROWS", 64)  # several blocks
    options = {"held_out_lengths": held, "test_fraction": "0.25"}

    def make(name, rows, seed, **more):
        write_dataset(task, tmp_path / name, rows=rows, seed=seed, **options, **more)
        return {split: pq.read_table(tmp_path / name / split) for split in ("train", "test")}

    a = make("a", 400, 7)
    b = make("b", 400, 7, rows_per_file=50)
    c = make("c", 400, 8)
    longer = make("longer", 800, 7)
    for split in ("train", "test"):
        assert b[split].equals(a[split])  # same seed, other files: same rows
        assert c[split].num_rows == a[split].num_rows and not c[split].equals(a[split])
        # More rows: the same rows first (rows are drawn and split in order).
        assert longer[split].slice(0, a[split].num_rows).equals(a[split])
    assert (a["train"].num_rows, a["test"].num_rows) == (300, 100)
    # The first block is drawn from default_rng([seed, 0]).
    sources, _ = transduction.pairs(task, _resolved(task, seed=7), 0, 64)
    vocab = transduction.vocabulary(task)
    first = vocab.decode(a["train"].column("source")[0].as_py())
    default_held = transduction_default_held(task)
    assert first == next(s for s in sources if held == "" or len(s) not in default_held)


def _resolved(task, **options):
    from sparklstm.datasets.generate import resolve_options

    return resolve_options(task, options)


def transduction_default_held(task):
    return set(_resolved(task)["held_out_lengths"])


# ----------------------------------------------------------------------------- held-out lengths
@pytest.mark.parametrize(
    "task,held,expected",
    [
        ("addition", None, {6}),
        ("addition", "5,7", {5, 7}),
        ("addition", 8, {8}),
        ("dates", None, {14}),
        ("dates", [9, 20], {9, 20}),
    ],
)
def test_held_out_lengths_are_in_the_test_split_only(tmp_path, task, held, expected):
    write_dataset(task, tmp_path, rows=1000, seed=2, held_out_lengths=held)
    train, test = rows_of(tmp_path, "train"), rows_of(tmp_path, "test")
    assert (len(train), len(test)) == (800, 200)
    assert set(source_length_counts(test)) == expected
    train_lengths = set(source_length_counts(train))
    assert not train_lengths & expected
    possible = set(transduction.source_lengths(task, _resolved(task)))
    assert train_lengths == possible - expected  # every other length is trained on
    assert len(set(train)) > 700 and len(set(test)) > 150  # not a few rows repeated


def test_without_held_out_lengths_the_split_is_random(tmp_path):
    write_dataset("addition", tmp_path, rows=1000, seed=2, held_out_lengths="")
    train, test = rows_of(tmp_path, "train"), rows_of(tmp_path, "test")
    assert (len(train), len(test)) == (800, 200)
    assert set(source_length_counts(train)) == set(source_length_counts(test)) == set(range(4, 9))
    sources, targets = transduction.pairs("addition", _resolved("addition", seed=2), 0, BLOCK_ROWS)
    sources, targets = sources[:1000], targets[:1000]  # the first rows of a whole block
    is_test = held_out(0, 1000, Fraction("0.2"))
    assert test == [(s, t) for s, t, x in zip(sources, targets, is_test, strict=True) if x]


def test_a_test_fraction_of_zero_still_keeps_held_out_lengths_out_of_training(tmp_path):
    written = write_dataset("addition", tmp_path, rows=300, test_fraction=0)
    assert [s.name for s in written.splits] == ["train"] and not (tmp_path / "test").exists()
    assert 6 not in source_length_counts(rows_of(tmp_path, "train"))


# ----------------------------------------------------------------------------- the command
def test_make_data_writes_the_splits_and_the_vocabulary(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["addition", "--rows", 500, "--seed", 4, "--test-fraction", "0.1", "--out", out]
    status, stdout, stderr = run(capsys, *argv, "--rows-per-file", 300)
    assert (status, stderr) == (0, "")
    assert stdout.splitlines() == [
        f"train: 450 rows -> {out / 'train'} (2 files)",
        f"test: 50 rows -> {out / 'test'} (1 files)",
        f"vocabulary: 15 tokens (<pad> <start> <end>, 12 characters) -> {out / 'vocabulary.json'}",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "vocabulary.json"]
    assert set(source_length_counts(rows_of(out, "test"))) == {6}
    status, stdout, stderr = run(capsys, *argv)
    assert status == 2 and "pass --overwrite" in stderr
    status, _, _ = run(capsys, *argv, "--held-out-lengths", "", "--overwrite")
    assert status == 0 and len(source_length_counts(rows_of(out, "test"))) > 1

    status, stdout, stderr = run(
        capsys, "dates", "--rows", 200, "--min-year", 2000, "--max-year", 2009, "--out", out / "d"
    )
    assert (status, stderr) == (0, "")
    assert stdout.splitlines()[2].startswith("vocabulary: 70 tokens")
    assert {target[:3] for _, target in rows_of(out / "d", "train")} == {"200"}


def test_help_lists_the_transduction_tasks(capsys):
    status, stdout, _ = run(capsys, "--help")
    assert status == 0 and "addition" in stdout and "dates" in stdout
    status, stdout, _ = run(capsys, "dates", "--help")
    assert status == 0 and "--held-out-lengths" in stdout and "--min-year" in stdout
    assert "--seq-len" not in stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["addition", "--held-out-lengths", "9"],
            "no addition source has length 9 (possible: 4..8)",
        ),
        (["addition", "--max-digits", 1], "--held-out-lengths 6: no addition source has length 6"),
        (["addition", "--held-out-lengths", "4,5,6,7,8"], "holds out every source length"),
        (["addition", "--held-out-lengths", "5,x"], "argument --held-out-lengths: 'x' is not an"),
        (["addition", "--held-out-lengths", "0"], "argument --held-out-lengths: 0 must be >= 1"),
        (["addition", "--max-digits", 19], "--max-digits 19: must be <= 18"),
        (["dates", "--min-year", 2000, "--max-year", 1999], "--min-year 2000 is after --max-year"),
        (["dates", "--min-year", 1900], "at most 100 years"),
        (["dates", "--min-year", 999], "argument --min-year: 999 must be a year in 1000..9999"),
        (["dates", "--held-out-lengths", "7"], "(possible: 8..28)"),
    ],
)
def test_option_mistakes_exit_2_with_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run(capsys, *argv, "--rows", 10, "--out", "o")
    assert status == 2 and stdout == ""
    assert stderr.startswith("make_data: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_held_out_lengths_too_rare_to_fill_the_test_split(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(transduction, "BLOCK_ROWS", 16)  # 0.1% of the rows have length 28
    argv = ["dates", "--rows", 100, "--test-fraction", "0.5", "--held-out-lengths", "28"]
    status, stdout, stderr = run(capsys, *argv, "--out", tmp_path / "o")
    assert status == 2 and stdout == ""
    assert stderr.startswith(  # after 100 * --rows rows drawn
        "make_data: error: --held-out-lengths 28: 10000 rows drawn did not fill the test split ("
    )
    assert list((tmp_path / "o").iterdir()) == []  # no partial dataset
    expected = math.floor(100 * 0.5)
    status, _, _ = run(capsys, *argv[:-1], "23", "--out", tmp_path / "p")
    assert status == 0 and len(rows_of(tmp_path / "p", "test")) == expected
