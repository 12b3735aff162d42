"""Bad landing files cost their bad lines (or, when nothing can be read, the file), never the source.

Each test loads a source with a real run (filesystem connector, dlt, Postgres) twice: the first
run loads every good row cell for cell and sets the bad line or file aside by name (file:line,
rule, reason); the second run is clean: no error, nothing read again, nothing duplicated.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.filesystem.inspect import inspect_table
from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query

MB = 1 << 20


class Landing:
    """A landing folder and a filesystem source `drops` with one table per entry of ``tables``."""

    def __init__(self, root: Path, tables: dict[str, dict], table_options: dict | None = None,
                 settings: dict | None = None):
        self.folder = root / "landing"
        self.folder.mkdir(parents=True)
        self.clock = time.time() - 7200
        source = {"connector": "filesystem",
                  "settings": {"bucket_url": str(self.folder), "files": tables, **(settings or {})},
                  "tables": {name: (table_options or {}).get(name, {}) for name in tables}}
        self.path = root / "headwater.yaml"
        self.path.write_text(json.dumps({"sources": {"drops": source}}, indent=2))  # JSON is YAML too

    def write(self, name: str, content: bytes | str) -> None:
        """Write a file with a modification time later than every file before it."""
        self.clock += 60
        path = self.folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.utime(path, (self.clock, self.clock))

    def load(self, database_url: str):
        project = load_project(self.path, connector_registry())
        result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                             PostgresAddress.from_url(database_url))
        assert result.ok, result.error
        assert result.set_aside == []  # nothing reached Postgres that it refused
        return result

    def settings(self) -> dict:
        project = load_project(self.path, connector_registry())
        return project.resolved_settings(project.source("drops"))


def table_load(result, table: str):
    return next(load for load in result.tables if load.table == table)


def quarantined(url: str, table: str) -> list[tuple]:
    return query(url, f"select location, rule, reason from raw_drops.{table}__quarantine order by location")


def assert_second_run_is_clean(landing: Landing, url: str, tables: list[str]) -> None:
    counts = {table: query(url, f"select count(*) from raw_drops.{table}") for table in tables}
    held = {table: query(url, f"select count(*) from information_schema.tables where table_schema = 'raw_drops' "
                              f"and table_name = '{table}__quarantine'") for table in tables}
    again = landing.load(url)
    assert [(load.table, load.read, load.files) for load in again.tables] == [(table, 0, []) for table in
                                                                              [load.table for load in again.tables]]
    for table in tables:
        assert query(url, f"select count(*) from raw_drops.{table}") == counts[table]
        if held[table] == [(1,)]:
            assert query(url, f"select count(*) = count(distinct location) from raw_drops.{table}__quarantine") == [
                (True,)]


def test_a_byte_order_mark_never_becomes_part_of_a_column_name(tmp_path, database_url):
    landing = Landing(tmp_path, {"customers": {"glob": "customers*"}, "events": {"glob": "events*"}},
                      {"customers": {"primary_key": "id"}, "events": {"primary_key": "id"}})
    bom = "\ufeff"
    landing.write("customers_excel.csv", f"{bom}id,name\r\n1,Ana\r\n2,Zoë\r\n")
    landing.write("customers_quoted.csv", f'{bom}"id","name"\n3,"Bo"\n')
    landing.write("customers_twice.csv", f"{bom}{bom}id,name\n4,Cy\n")  # a BOM written over a BOM
    landing.write("customers_commented.csv", f"{bom}# exported 2024-05-01\nid,name\n5,Di\n")
    landing.write("events_one.jsonl", f'{bom}{{"id": 1, "kind": "a"}}\n{{"id": 2, "kind": "b"}}\n')
    # Two JSONL files joined with `cat`: the second one's mark starts a line.
    landing.write("events_joined.jsonl", f'{bom}{{"id": 3, "kind": "c"}}\n{bom}{{"id": 4, "kind": "d"}}\n')

    result = landing.load(database_url)

    assert query(database_url, "select id, name, _file_name, _line from raw_drops.customers order by id") == [
        (1, "Ana", "customers_excel.csv", 2), (2, "Zoë", "customers_excel.csv", 3),
        (3, "Bo", "customers_quoted.csv", 2), (4, "Cy", "customers_twice.csv", 2),
        (5, "Di", "customers_commented.csv", 3)]
    assert query(database_url, "select id, kind, _line from raw_drops.events order by id") == [
        (1, "a", 1), (2, "b", 2), (3, "c", 1), (4, "d", 2)]
    for table in ("customers", "events"):
        columns = query(database_url, "select column_name from information_schema.columns where table_schema = "
                                      "'raw_drops' and table_name = %s and column_name not like '\\_%%'", table)
        assert sorted(columns) == sorted([("id",), ("name",)] if table == "customers" else [("id",), ("kind",)])
        assert table_load(result, table).quarantined == 0
    assert_second_run_is_clean(landing, database_url, ["customers", "events"])


def test_a_repeated_column_name_is_loaded_under_a_numbered_name_and_reported(tmp_path, database_url):
    landing = Landing(tmp_path, {"people": {"glob": "people*"}, "other": {"glob": "other*"}})
    landing.write("people_exact.csv", "id,name,name\n1,Ana,Anita\n2,Bo,\n")
    landing.write("people_case.csv", "id,Name,name\n3,CY,cy\n")  # one column once snake_case names them
    landing.write("people_case.jsonl", '{"id": 4, "Name": "DI", "name": "di"}\n')
    landing.write("people_exported.jsonl", '{"id": 5, "name": "ed", "_line": 99}\n')  # a raw table, exported
    landing.write("other.csv", "id,v\n1,x\n")

    result = landing.load(database_url)

    assert query(database_url, "select id, name, name_2, _file_name from raw_drops.people order by id") == [
        (1, "Ana", "Anita", "people_exact.csv"), (2, "Bo", None, "people_exact.csv"),
        (3, "cy", "CY", "people_case.csv"), (4, "di", "DI", "people_case.jsonl"),
        (5, "ed", None, "people_exported.jsonl")]
    assert query(database_url, "select _line, _line_2 from raw_drops.people where id = 5") == [(1, 99)]
    assert query(database_url, "select id, v from raw_drops.other") == [(1, "x")]
    notes = {report["file"]: report["notes"] for report in table_load(result, "people").files}
    assert notes["people_exact.csv"] == ["column 3 repeats the name 'name' of column 2: loaded as 'name_2'"]
    assert notes["people_case.csv"] == ["columns 3 ('name') and 2 ('Name') both land as 'name': column 2 is "
                                        "loaded as 'Name_2'"]
    assert notes["people_case.jsonl"] == ["columns 3 ('name') and 2 ('Name') both land as 'name': column 2 is "
                                          "loaded as 'Name_2'"]
    assert notes["people_exported.jsonl"] == ["column 3 is named '_line', a column added to every row (where it came "
                                              "from): loaded as '_line_2'"]
    assert table_load(result, "people").quarantined == 0

    inspected = {inspection.file: inspection for inspection in inspect_table(landing.settings(), "people")}
    assert inspected["people_exact.csv"].columns == {"id": "bigint", "name": "text", "name_2": "text"}
    assert "column 3 repeats the name 'name' of column 2: loaded as 'name_2'" in inspected["people_exact.csv"].notes
    assert_second_run_is_clean(landing, database_url, ["people", "other"])


def nested(depth: int, kind: str) -> str:
    return ("[" * depth + "1" + "]" * depth) if kind == "array" else ('{"a": ' * depth + "1" + "}" * depth)


def test_jsonl_lines_nested_too_deep_or_too_long_are_set_aside_and_the_rest_of_the_file_loads(tmp_path, database_url):
    landing = Landing(tmp_path, {"docs": {"glob": "docs*.jsonl"}, "shallow": {"glob": "shallow*.jsonl",
                                                                             "max_nesting_depth": 2},
                                 "other": {"glob": "other*"}},
                      settings={"max_line_bytes": 8192})
    lines = [
        '{"id": 1, "doc": {"tags": ["a", "b"], "n": 2.5, "quote": "say \\"hi\\"\\n"}}',
        f'{{"id": 2, "doc": {nested(1000, "array")}}}',  # a thousand levels: Polars needed minutes and gigabytes
        f'{{"id": 3, "doc": {nested(1000, "object")}}}',
        f'{{"id": 4, "doc": {nested(63, "array")}}}',  # with the line's object, the default limit: loads
        f'{{"id": 5, "doc": {nested(64, "object")}}}',  # one level more
        # brackets in strings are not nesting, and do not hide it either
        '{"id": 6, "doc": {"text": "[[[[{{{{ ]]]] }}}}"}}',
        '{"id": 7, "doc": ' + '["]]", ' * 70 + "1" + "]" * 70 + "}",
        '{"id": 8, "doc": {"big": "' + "x" * 10_000 + '"}}',  # longer than max_line_bytes
        '{"id": 9, "doc": null}',
    ]
    landing.write("docs.jsonl", "\n".join(lines) + "\n")
    landing.write("shallow.jsonl", '{"id": 1, "doc": [1]}\n{"id": 2, "doc": [[1]]}\n')
    landing.write("other.csv", "id,v\n1,x\n")

    result = landing.load(database_url)

    rows = query(database_url, "select id, doc, pg_typeof(doc)::text from raw_drops.docs order by id")
    assert [(id_, doc) for id_, doc, _ in rows] == [
        (1, {"tags": ["a", "b"], "n": 2.5, "quote": 'say "hi"\n'}), (4, json.loads(nested(63, "array"))),
        (6, {"text": "[[[[{{{{ ]]]] }}}}"}), (9, None)]
    assert {kind for _, _, kind in rows} == {"jsonb"}
    too_deep = "objects and arrays nest deeper than max_nesting_depth (64)"
    assert quarantined(database_url, "docs") == [
        ("docs.jsonl:2", "depth", too_deep), ("docs.jsonl:3", "depth", too_deep), ("docs.jsonl:5", "depth", too_deep),
        ("docs.jsonl:7", "depth", too_deep),
        ("docs.jsonl:8", "size", f"the line is {len(lines[7]):,} bytes long, longer than max_line_bytes (8,192)")]
    [record] = query(database_url, "select record from raw_drops.docs__quarantine where location = 'docs.jsonl:8'")
    assert json.loads(record[0])["_raw_line"].startswith('{"id": 8, "doc": {"big": "xxx')
    docs = table_load(result, "docs")
    assert (docs.read, docs.loaded, docs.quarantined) == (9, 4, 5)
    assert query(database_url, "select id, doc from raw_drops.shallow order by id") == [(1, [1])]
    assert quarantined(database_url, "shallow") == [
        ("shallow.jsonl:2", "depth", "objects and arrays nest deeper than max_nesting_depth (2)")]
    assert query(database_url, "select id, v from raw_drops.other") == [(1, "x")]
    assert_second_run_is_clean(landing, database_url, ["docs", "shallow", "other"])

    # A later file with plain values in the JSON column: they are JSON too (a string quoted).
    landing.write("docs_later.jsonl", '{"id": 20, "doc": "plain"}\n{"id": 21, "doc": 7}\n')
    landing.load(database_url)
    assert query(database_url, "select id, doc, jsonb_typeof(doc) from raw_drops.docs where id >= 20 order by id") == [
        (20, "plain", "string"), (21, 7, "number")]


def parquet_bytes(table: pa.Table, **options) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def test_corrupt_parquet_files_are_set_aside_by_name_and_the_other_files_and_tables_load(tmp_path, database_url):
    landing = Landing(tmp_path, {"items": {"glob": "items*"}, "other": {"glob": "other*"}})
    good = parquet_bytes(pa.table({"id": [1, 2], "v": ["a", "b"]}))
    landing.write("items_good.parquet", good)
    landing.write("items_truncated.parquet", good[: len(good) // 2])
    landing.write("items_random.parquet", bytes(range(256)) * 8)
    landing.write("items_footer.parquet", good[:-12] + b"\xff" * 8 + good[-4:])  # the magic bytes, a broken footer
    landing.write("items_text.parquet", "id,v\n3,c\n")
    # Intact footer, a corrupt page in the second row group: the first batch (100,000 rows) is read before the break.
    rows = 200_000
    partial = parquet_bytes(pa.table({"id": list(range(10, 10 + rows)), "v": [f"r{i}" for i in range(rows)]}),
                            row_group_size=100_000, compression="none")
    page = pq.ParquetFile(io.BytesIO(partial)).metadata.row_group(1).column(1).data_page_offset
    landing.write("items_partial.parquet", partial[:page] + b"\xff" * 64 + partial[page + 64:])
    landing.write("other.csv", "id,v\n1,x\n")

    result = landing.load(database_url)

    assert query(database_url, "select id, v, _file_name from raw_drops.items where id < 10 order by id") == [
        (1, "a", "items_good.parquet"), (2, "b", "items_good.parquet")]
    assert query(database_url, "select count(*), min(id), max(id) from raw_drops.items where "
                               "_file_name = 'items_partial.parquet'") == [(100_000, 10, 100_009)]
    assert query(database_url, "select id, v from raw_drops.other") == [(1, "x")]
    set_aside = quarantined(database_url, "items")
    assert [(location, rule) for location, rule, _ in set_aside] == [
        (name, "file") for name in ("items_footer.parquet", "items_partial.parquet", "items_random.parquet",
                                    "items_text.parquet", "items_truncated.parquet")]
    for location, _, reason in set_aside:
        assert reason.startswith("cannot be read as parquet"), (location, reason)
        assert reason.endswith("it is read again when it changes") or location == "items_partial.parquet"
    partial_reason = dict((location, reason) for location, _, reason in set_aside)["items_partial.parquet"]
    assert partial_reason.startswith("cannot be read as parquet past row 100,000 (")
    assert partial_reason.endswith("(100,000 rows before that point loaded and are replaced then)")
    statuses = {report["file"]: report["status"] for report in table_load(result, "items").files}
    assert statuses == {"items_good.parquet": "loaded", "items_truncated.parquet": "unreadable",
                        "items_random.parquet": "unreadable", "items_footer.parquet": "unreadable",
                        "items_text.parquet": "unreadable", "items_partial.parquet": "unreadable"}
    assert_second_run_is_clean(landing, database_url, ["items", "other"])


def digest(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_fields_of_ten_megabytes_load_from_csv_and_jsonl(tmp_path, database_url):
    landing = Landing(tmp_path, {"blobs": {"glob": "blobs*"}, "other": {"glob": "other*"}})
    big = "".join(chr(ord("a") + i % 26) for i in range(10 * MB))
    quoted = big[:5 * MB] + '"' + big[5 * MB:]  # a doubled quote inside: "" in the file
    landing.write("blobs_plain.csv", f"id,body\n1,small\n2,{big}\n3,end\n")  # Arrow's reader, past its 1 MB block
    landing.write("blobs_quoted.csv", f'id,body\n4,"{quoted.replace(chr(34), chr(34) * 2)}"\n5,"x, y"\n')
    # A broken line in the same block sends it through the record-by-record reader (Python's csv module).
    landing.write("blobs_broken.csv", f"id,body\n6,{big}\n7,too,many,fields\n8,fine\n")
    landing.write("blobs.jsonl", json.dumps({"id": 9, "body": big}) + "\n" + json.dumps({"id": 10, "body": "j"}) + "\n")
    landing.write("other.csv", "id,v\n1,x\n")

    result = landing.load(database_url)

    assert query(database_url, "select id, length(body), md5(body) from raw_drops.blobs order by id") == [
        (1, 5, digest("small")), (2, 10 * MB, digest(big)), (3, 3, digest("end")), (4, 10 * MB + 1, digest(quoted)),
        (5, 4, digest("x, y")), (6, 10 * MB, digest(big)), (8, 4, digest("fine")), (9, 10 * MB, digest(big)),
        (10, 1, digest("j"))]
    assert quarantined(database_url, "blobs") == [("blobs_broken.csv:3", "columns", "4 fields, the header has 2")]
    assert table_load(result, "blobs").read == 10
    assert query(database_url, "select id, v from raw_drops.other") == [(1, "x")]
    assert_second_run_is_clean(landing, database_url, ["blobs", "other"])


def test_a_row_holding_a_nul_character_is_quarantined_or_stripped_and_the_rest_of_the_file_loads(
        tmp_path, database_url):
    landing = Landing(tmp_path, {"notes": {"glob": "notes*"},
                                 "kept": {"glob": "kept*", "nul_characters": "strip"},
                                 "other": {"glob": "other*"}})
    landing.write("notes.csv", b"id,body,tag\n1,plain,a\n2,bro\x00ken,b\n3,\"quoted\x00\",c\n4,last,d\n")
    landing.write("notes.jsonl", b'{"id": 5, "body": "ok", "meta": {"k": 1}}\n'
                                 b'{"id": 6, "body": "a\\u0000b", "meta": {"k": 2}}\n'
                                 # an escaped backslash and the text u0000: no NUL
                                 b'{"id": 7, "body": "\\\\u0000", "meta": {"k": "\\\\u0000"}}\n'
                                 b'{"id": 8, "body": "in the object", "meta": {"k": "\\u0000"}}\n'
                                 b'{"id": 9, "body": "raw \x00 byte", "meta": null}\n'  # not even JSON
                                 b'{"id": 10, "body": "end", "meta": {"k": 3}}\n')
    landing.write("notes.parquet", parquet_bytes(pa.table({"id": [11, 12], "body": ["p\x00q", "parquet"]})))
    landing.write("kept.csv", b"id,body\n1,a\x00b\n2,c\n")
    landing.write("kept.jsonl", b'{"id": 3, "body": "d\\u0000e", "meta": {"k": "\\u0000x"}}\n')
    landing.write("other.csv", "id,v\n1,x\n")

    result = landing.load(database_url)

    assert query(database_url, "select id, body, tag, meta from raw_drops.notes order by id") == [
        (1, "plain", "a", None), (4, "last", "d", None), (5, "ok", None, {"k": 1}),
        (7, "\\u0000", None, {"k": "\\u0000"}), (10, "end", None, {"k": 3}), (12, "parquet", None, None)]
    reason = "holds a NUL character (\\x00), which PostgreSQL text cannot store"
    assert quarantined(database_url, "notes") == [
        ("notes.csv:3", "nul_character", f"body: {reason}"), ("notes.csv:4", "nul_character", f"body: {reason}"),
        ("notes.jsonl:2", "nul_character", f"body: {reason}"), ("notes.jsonl:4", "nul_character", f"meta: {reason}"),
        ("notes.jsonl:5", "nul_character", f"body: {reason}"), ("notes.parquet:1", "nul_character", f"body: {reason}")]
    records = dict(query(database_url, "select location, record from raw_drops.notes__quarantine"))
    assert json.loads(records["notes.csv:3"])["body"] == "bro\x00ken"  # the NUL kept, written as JSON's \u0000
    assert "\\u0000" in records["notes.csv:3"]
    notes = table_load(result, "notes")
    assert (notes.read, notes.loaded, notes.quarantined) == (12, 6, 6)
    assert query(database_url, "select id, body, meta from raw_drops.kept order by id") == [
        (1, "ab", None), (2, "c", None), (3, "de", {"k": "x"})]
    assert table_load(result, "kept").quarantined == 0
    assert query(database_url, "select id, v from raw_drops.other") == [(1, "x")]
    assert_second_run_is_clean(landing, database_url, ["notes", "kept", "other"])
