"""Landing files of any size are read in blocks: same rows, types, lines and quarantine as one whole read."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.filesystem import blocks, helpers
from connectors.filesystem.blocks import Framing, record_blocks, record_lines
from tests.conftest import query
from tests.connectors.test_filesystem import load, project_with, write


def utc(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of a few dozen bytes, so a small file crosses many block boundaries."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 40)
    monkeypatch.setattr(helpers, "PARQUET_BATCH_ROWS", 3)


def test_blocks_end_at_record_boundaries_even_inside_quotes_and_keep_line_numbers(tiny_blocks):
    text = b'id,note\n1,"first\nsecond, third"\n2,plain\n\n3,"say ""hi""\nthere"\n4,last'
    found = list(record_blocks(io.BytesIO(text)))
    assert b"".join(block.data for block in found) == text
    for block in found:  # no block splits a quoted field: each holds an even number of quotes
        assert block.data.count(b'"') % 2 == 0
    starts = [line for block in found for line in record_lines(block)[0].to_list()]
    assert starts == [1, 2, 4, 6, 8]  # header, record 1 (two lines), record 2, blank line skipped, 3 (two), 4
    assert sum(record_lines(block)[1] for block in found) == 1  # the blank line


def test_escaped_line_breaks_of_database_dumps_do_not_end_a_record(tiny_blocks):
    text = b"1\tfirst\\\nline\n2\tends in a backslash\\\\\n3\tlast\n"
    framing = Framing(quote=None, escape=b"\\")
    found = list(record_blocks(io.BytesIO(text), framing))
    assert b"".join(block.data for block in found) == text
    starts = [line for block in found for line in record_lines(block, framing)[0].to_list()]
    assert starts == [1, 3, 4]  # record 1 spans two lines (an escaped break); "\\\\" before a break ends record 2


def test_a_csv_read_in_many_blocks_loads_every_row_with_its_line_and_one_set_of_types(
    tmp_path, database_url, tiny_blocks
):
    lines = ["id,amount,note,seen_at"]
    lines += [f"{i},{i}.5,row {i},2026-11-{i:02d}T10:00:00Z" for i in range(1, 10)]
    lines[4] = '4,4.5,"a note, with a comma\nand a line break",2026-11-04T10:00:00Z'  # one record, two lines
    lines.insert(7, "")  # a blank line: skipped, but later rows keep their real line numbers
    lines.insert(9, "oops,1.0,bad id,2026-11-09T10:00:00Z")  # a later block: the id column is already an integer
    lines.insert(11, "11,2.0,too,many,fields")
    write(tmp_path / "landing" / "big.csv", "\r\n".join(lines) + "\r\n")

    # id is declared: a later block's value that is no integer is quarantined, not a reason to widen the key.
    result = load(project_with(tmp_path, str(tmp_path / "landing"), "*", columns={"id": "bigint"}), database_url)
    assert result.ok, result.error
    [items] = result.tables
    assert (items.read, items.loaded, items.quarantined) == (11, 9, 2)
    rows = query(database_url, "select id, amount, note, seen_at, _line from raw_drops.items order by id")
    expected_lines = {1: 2, 2: 3, 3: 4, 4: 5, 5: 7, 6: 8, 7: 10, 8: 12, 9: 14}
    assert [(row[0], row[4]) for row in rows] == sorted(expected_lines.items())
    assert rows[3][2] == "a note, with a comma\nand a line break"
    assert all(row[1] == row[0] + 0.5 and row[3] == utc(row[0], 10) for row in rows)
    types = dict(query(database_url, "select column_name, data_type from information_schema.columns "
                                     "where table_schema = 'raw_drops' and table_name = 'items'"))
    assert (types["id"], types["amount"], types["seen_at"]) == ("bigint", "double precision",
                                                                "timestamp with time zone")
    quarantined = query(database_url, "select location, rule, reason from raw_drops.items__quarantine "
                                      "order by location")
    assert quarantined == [
        ("big.csv:11", "cast", "id: 'oops' is not a valid integer"),
        ("big.csv:13", "columns", "5 fields, the header has 4"),
    ]


def test_a_jsonl_file_read_in_many_blocks_keeps_its_declared_types_and_lines(tmp_path, database_url, tiny_blocks):
    records = [{"id": i, "price": i + 0.25, "at": f"2026-11-{i:02d}T08:00:00+01:00"} for i in range(1, 8)]
    lines = [json.dumps(record) for record in records]
    lines[5] = json.dumps({"id": 6, "price": "not a price", "at": "2026-11-06T08:00:00+01:00"})
    write(tmp_path / "landing" / "events.jsonl", "\n".join(lines) + "\n")

    project = project_with(tmp_path, str(tmp_path / "landing"), "*", columns={"price": "double"})
    result = load(project, database_url)
    assert result.ok, result.error
    rows = query(database_url, "select id, price, at, _line from raw_drops.items order by id")
    assert rows == [(i, i + 0.25, utc(i, 7), i) for i in (1, 2, 3, 4, 5, 7)]
    assert query(database_url, "select location, rule, reason from raw_drops.items__quarantine") == [
        ("events.jsonl:6", "cast", "price: 'not a price' is not a valid number"),
    ]


def test_a_parquet_file_is_read_in_batches_with_row_numbers_across_them(tmp_path, database_url, tiny_blocks):
    landing = tmp_path / "landing"
    landing.mkdir()
    table = pa.table({"id": list(range(1, 11)), "seen_at": [utc(i) for i in range(1, 11)]})
    pq.write_table(table, landing / "ten.parquet", row_group_size=4)

    result = load(project_with(tmp_path, str(landing), "*"), database_url)
    assert result.ok, result.error
    assert result.rows == 10
    assert query(database_url, "select id, seen_at, _line from raw_drops.items order by id") == [
        (i, utc(i), i) for i in range(1, 11)
    ]


def test_rows_a_rule_rejects_in_an_early_block_do_not_divert_later_blocks(tmp_path, database_url, tiny_blocks):
    lines = ["id,quantity"] + [f"{i},{0 if i <= 2 else i}" for i in range(1, 13)]  # ids 1 and 2 break the rule
    write(tmp_path / "landing" / "q.csv", "\n".join(lines) + "\n")
    (tmp_path / "headwater.yaml").write_text(
        "sources:\n  drops:\n    connector: filesystem\n"
        f"    settings: {{bucket_url: '{tmp_path / 'landing'}', files: {{items: '*.csv'}}}}\n"
        "    tables:\n      items:\n        rules:\n          - range: {quantity: {min: 1}}\n"
    )
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import load_project

    result = load(load_project(tmp_path / "headwater.yaml", connector_registry()), database_url)
    assert result.ok, result.error
    [items] = result.tables
    assert (items.loaded, items.quarantined) == (10, 2)
    assert query(database_url, "select id from raw_drops.items order by id") == [(i,) for i in range(3, 13)]
    assert query(database_url, "select location, rule from raw_drops.items__quarantine order by location") == [
        ("q.csv:2", "range"), ("q.csv:3", "range"),
    ]


def test_a_line_past_max_line_bytes_is_passed_over_without_being_held_and_the_lines_around_it_keep_their_numbers(
    tiny_blocks,
):
    from connectors.filesystem.blocks import LINES, LongLine

    long = b'{"id": 2, "v": "' + b"x" * 500 + b'"}'
    text = b'{"id": 1}\n' + long + b'\n{"id": 3}\n' + long + b"\n" + b'{"id": 5}\n' + long  # the last: no break
    found = list(record_blocks(io.BytesIO(text), LINES, max_line_bytes=100))
    longs = [item for item in found if isinstance(item, LongLine)]
    assert [(item.first_line, item.size, item.head[:9]) for item in longs] == [
        (2, len(long), b'{"id": 2,'), (4, len(long), b'{"id": 2,'), (6, len(long), b'{"id": 2,')]
    kept = [(item.first_line, item.data) for item in found if not isinstance(item, LongLine) and item.data]
    assert b"".join(data for _, data in kept) == b'{"id": 1}\n{"id": 3}\n{"id": 5}\n'
    assert [line for first, data in kept for line in range(first, first + data.count(b"\n"))] == [1, 3, 5]


def test_a_long_line_inside_a_block_is_cut_out_as_well(monkeypatch):
    from connectors.filesystem.blocks import LINES, LongLine

    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)  # the whole text is one block: the long line is inside it
    text = b"a\n" + b"b" * 300 + b"\nc\n" + b"d" * 300 + b"\ne"
    found = list(record_blocks(io.BytesIO(text), LINES, max_line_bytes=100))
    assert [(type(item).__name__, item.first_line) for item in found] == [
        ("Block", 1), ("LongLine", 2), ("Block", 3), ("LongLine", 4), ("Block", 5)]
    assert [item.data for item in found if not isinstance(item, LongLine)] == [b"a\n", b"c\n", b"e"]


def test_nesting_depth_is_measured_exactly_whatever_the_strings_hold():
    import random

    from connectors.filesystem.json_depth import too_deep

    def depth(value) -> int:
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        return 0 if children is None else 1 + max((depth(child) for child in children), default=0)

    rng = random.Random(7)
    texts = [1, "x", '[{"]', '\\"[', None, "a\\\\", "]]]}}", "é"]

    def value(levels: int):
        if levels == 0:
            return rng.choice(texts)
        children = [value(levels - 1)] + [value(rng.randint(0, min(levels - 1, 2))) for _ in range(rng.randint(0, 2))]
        rng.shuffle(children)
        return {f'k{i}"[': child for i, child in enumerate(children)} if rng.random() < 0.5 else children

    for _ in range(400):
        lines = [json.dumps({"id": 1, "v": value(rng.choice([0, 1, 3, 7, 8, 9, 20]))}, ensure_ascii=rng.random() < 0.5)
                 for _ in range(rng.randint(1, 4))]
        for limit in (1, 2, 8, 9, 64):
            expected = {index for index, line in enumerate(lines) if depth(json.loads(line)) > limit}
            assert set(too_deep("\n".join(lines).encode(), limit)) == expected, (limit, lines)
    # Strings whose brackets would close the levels before them do not hide how deep a line is.
    hidden = '{"a": ' + '["]]", ' * 200 + "1" + "]" * 200 + "}"
    assert set(too_deep(hidden.encode(), 64)) == {0}
    assert set(too_deep(b"[" * 100_000, 64)) == {0}  # never closed: set aside before a parser descends into it
