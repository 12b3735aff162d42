"""Quarantine keeps no raw personal data: every path that sets rows aside treats them as the table's `pii` steps do.

A landing-file source plants an e-mail address, a phone number, an SSN-like number and a name (declared PII, no
step) in rows that are quarantined by a rule, a cast, a line the reader cannot split, a broken quote, a NUL
character and Postgres refusing a value. After the run no raw value is left in any quarantine table, in the
staging schema, in dlt's state or in any file under `.headwater/`; a replay treats each value exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.load.pipeline import SourceLoad, load_source
from headwater.load.replay import replay
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, load_project
from headwater.quarantine.selection import Selection
from tests.conftest import query
from tests.load.helpers import drop_connections

SALT = "pepper and salt"
PATHS = {  # path -> line of people.csv (1-based, after the header) or the events row
    "range": 2, "cast": 3, "pattern": 4, "columns": 5, "nul": 6, "quote": 7, "refused": 2,
}


def planted(path: str) -> dict[str, str]:
    """The personal values planted in the row quarantined by ``path``: each one found nowhere else."""
    number = list(PATHS).index(path) + 10
    return {"email": f"{path}.Secret@Example.org", "phone": f"+1 555 01{number} 77{number}",
            "ssn": f"078-05-11{number}", "name": f"Secret {path.title()}person"}


def expected_hash(email: str, normalised: bool = True) -> str:
    """The pii step's hash of an address: HMAC-SHA256 with the salt, of the value the steps before it made
    (people's trim and lower case)."""
    value = email.strip().lower() if normalised else email
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()


def people_csv() -> bytes:
    def line(identifier: int, path: str | None, qty: str, name: str | None = None, note: str = "ok") -> str:
        values = planted(path) if path else {"email": f"ok{identifier}@example.com", "phone": "+1 555 0000 0000",
                                             "ssn": "000-00-0000", "name": f"Ada {identifier}"}
        return (f"{identifier}, {values['email']} ,{values['phone']},{values['ssn']},{name or values['name']},"
                f"{qty},{note}")

    lines = [
        "id,email,phone,ssn,name,qty,note",
        line(1, None, "2"),
        line(2, "range", "50"),  # range: qty above 10
        line(3, "cast", "lots"),  # cast: qty is declared bigint
        line(4, "pattern", "3", name=planted("pattern")["name"].lower()),  # pattern: the name starts lower case
        line(5, "columns", "3") + ",one field too many",  # the reader cannot split it
        line(6, "nul", "3", note="bro\x00ken"),  # a NUL character
        line(7, "quote", "3").replace(",+1", ',"+1', 1),  # a quote that does not close on its line
        line(8, None, "4"),
    ]
    return ("\n".join(lines) + "\n").encode()


def events_parquet(path: Path) -> None:
    """Row 2's timestamp fits Arrow (285,000 BC) but not Postgres: Postgres refuses that row."""
    values = planted("refused")
    pq.write_table(pa.table({
        "id": [1, 2],
        "at": pa.array([0, -9_000_000_000_000_000_000], pa.int64()).cast(pa.timestamp("us")),
        "email": ["ok@example.com", values["email"]], "phone": ["+1 555 0000 0000", values["phone"]],
        "ssn": ["000-00-0000", values["ssn"]], "name": ["Ada", values["name"]],
    }), path)


PII_STEP = {"pii": {"email": {"hash": {"salt": "${PII_SALT}"}}, "phone": "mask", "ssn": "drop"}}


def write_config(root: Path, landing: Path, max_qty: int = 10, pattern: str = "^[A-Z]", quarantine: str = "") -> Path:
    people = {"primary_key": "id", "pii": ["name"],
              "steps": [{"trim": ["email"]}, {"normalise": {"email": "lower"}}, PII_STEP],
              "rules": [{"range": {"qty": {"min": 1, "max": max_qty}}}, {"pattern": {"name": pattern}}]}
    events = {"primary_key": "id", "pii": ["name"], "steps": [PII_STEP]}
    settings = {"bucket_url": str(landing), "files": {"people": {"glob": "people*.csv", "columns": {"qty": "bigint"}},
                                                       "events": "events*.parquet"}}
    config = root / "headwater.yaml"
    config.write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings: {json.dumps(settings)}
            tables: {json.dumps({"people": people, "events": events})}
        """) + quarantine)
    return config


def land(root: Path, database_url: str) -> tuple[Path, ProjectConfig, SourceLoad]:
    """(config file, project, load) of source `drops` after one run over people.csv and events.parquet."""
    (root / ".headwater").mkdir()
    (root / ".headwater" / "secrets.env").write_text(f"PII_SALT={SALT}\n")
    landing = root / "landing"
    landing.mkdir()
    (landing / "people.csv").write_bytes(people_csv())
    events_parquet(landing / "events.parquet")
    config = write_config(root, landing)
    project = load_project(config, connector_registry())
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    return config, project, result


@pytest.fixture
def landed(tmp_path, database_url) -> tuple[Path, ProjectConfig, SourceLoad]:
    config, project, result = land(tmp_path, database_url)
    assert result.ok, result.error
    return config, project, result


def records(database_url: str, table: str) -> dict[str, tuple]:
    """location -> (rule, reason, record, pii_treatment) of a quarantine table."""
    rows = query(database_url,
                 f"select location, rule, reason, record, pii_treatment from raw_drops.{table}__quarantine")
    return {location: (rule, reason, json.loads(record), json.loads(treatment) if treatment else None)
            for location, rule, reason, record, treatment in rows}


def everything_in_the_database(database_url: str) -> str:
    """Every row of every table of the raw and staging schemas as text, and dlt's state decompressed."""
    from dlt.pipeline.state_sync import decompress_state

    texts = []
    for schema, table in query(database_url, "select table_schema, table_name from information_schema.tables "
                                             "where table_schema like 'raw\\_drops%'"):
        texts += [row[0] for row in query(database_url, f'select t::text from "{schema}"."{table}" t')]
    for (state,) in query(database_url, "select state from raw_drops._dlt_pipeline_state"):
        texts.append(json.dumps(decompress_state(state), default=str))
    return "\n".join(texts)


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_no_raw_personal_value_is_left_in_quarantine_staging_state_or_working_files(landed, database_url, tmp_path):
    _, _, result = landed
    loads = {t.table: (t.read, t.loaded, t.quarantined) for t in result.tables}
    assert loads == {"people": (8, 2, 6), "events": (2, 1, 1)}

    people = records(database_url, "people")
    by_rule = {rule: (location, reason, record, marks) for location, (rule, reason, record, marks) in people.items()}
    assert sorted(by_rule) == ["cast", "columns", "nul_character", "pattern", "quote", "range"]
    salted = {"email": f"hash:{hmac.new(SALT.encode(), b'headwater pii salt', hashlib.sha256).hexdigest()[:8]}",
              "phone": "mask", "ssn": "drop", "name": "mask"}
    for rule, path in (("range", "range"), ("cast", "cast"), ("pattern", "pattern"), ("columns", "columns"),
                       ("nul_character", "nul")):
        location, reason, record, marks = by_rule[rule]
        values = planted(path)
        assert location == f"people.csv:{PATHS[path] + 1}"
        # The hash a clean load gives: of the address trimmed and lower-cased, as the steps before `pii` make it.
        assert record["email"] == expected_hash(values["email"]), rule
        assert record["phone"] == "+* *** **** " + values["phone"][-4:], rule
        assert "ssn" not in record, rule
        assert record["name"].endswith(values["name"][-4:]) and set(record["name"][:-4]) <= {"*", " "}, rule
        assert {name: mark for name, mark in marks.items() if name != "_raw_line"} == salted, rule
    # The name the pattern rejected is masked in its reason too.
    masked_name = by_rule["pattern"][2]["name"]
    assert by_rule["pattern"][1] == f"name: '{masked_name}' does not match ^[A-Z]"
    # Lines the reader could not read are shown with every letter and digit as *.
    assert by_rule["columns"][2]["_raw_line"] == "*, " + "*" * 7 + ".******@*******.*** ,+* *** **** ****," + (
        "***-**-****,****** *************,*,**,*** ***** *** ****")
    quote_record = by_rule["quote"][2]
    assert set(quote_record["_raw_line"]) <= set('*,. @+-"') and quote_record["_raw_line"].startswith("*,")
    assert by_rule["quote"][3] == {"_raw_line": "mask"}

    # Postgres refused a row that went through the steps: hashed, masked and dropped already; the name masked.
    [(location, (rule, reason, record, marks))] = records(database_url, "events").items()
    values = planted("refused")
    assert (location, rule) == ("events.parquet:2", "load")
    assert record["email"] == expected_hash(values["email"], normalised=False)
    assert record["phone"] == "+* *** **** " + values["phone"][-4:]
    assert "ssn" not in record and record["name"] != values["name"]
    assert marks == salted

    raw_values = [value for path in PATHS for value in planted(path).values()]
    stored = everything_in_the_database(database_url)
    assert [value for value in raw_values if value in stored] == []
    assert "ok1@example.com" not in stored  # the good row's address is hashed in the table too
    files = files_under(tmp_path / ".headwater")
    assert any(path.suffix == ".json" for path in files)  # dlt's working folder is there, and searched
    found = {(str(path.relative_to(tmp_path)), value) for path, data in files.items() for value in raw_values
             if value.encode() in data}
    assert found == set()


def test_a_load_left_pending_keeps_no_raw_personal_value_in_its_files(tmp_path, database_url, monkeypatch):
    drop_connections(monkeypatch, database_url, "people")  # every try to copy people loses its connection
    _, _, result = land(tmp_path, database_url)
    assert not result.ok and "Postgres failed while copying into raw_drops" in result.error

    files = files_under(tmp_path / ".headwater")
    waiting = [path for path in files if path.name.startswith("people__quarantine") and path.suffix == ".parquet"]
    assert waiting, "the quarantined rows wait in a load file of the pending package"
    raw_values = [value for path in PATHS for value in planted(path).values()]
    found = {(str(path.relative_to(tmp_path)), value) for path, data in files.items() for value in raw_values
             if value.encode() in data}
    assert found == set()


def test_a_replay_treats_personal_data_once_and_a_masked_declared_value_waits_to_be_given(landed, database_url,
                                                                                        tmp_path):
    config, _, _ = landed
    write_config(tmp_path, tmp_path / "landing", max_qty=100, pattern="^[A-Za-z]")  # the rules were too strict
    project = load_project(config, connector_registry())
    address = PostgresAddress.from_url(database_url)

    # `name` is declared PII with no pii step: masked in quarantine, it cannot be loaded as it is.
    [result] = replay(project, project.source("drops"), address, ["people"])
    assert (result.replayed, result.still_quarantined) == (0, 6)
    assert result.reasons == {"value to give (--set)": 4, "columns": 1, "quote": 1}
    [(reason,)] = query(database_url, "select reason from raw_drops.people__quarantine where location = %s",
                        "people.csv:3")
    assert reason == ("qty: '50' is above the maximum 10 (not replayed: name is masked in quarantine and the table "
                      "now loads it as it is; give the value (--set name=VALUE) or read the row from its source "
                      "again)")

    # Given the name, the row loads: its address hashed once, its phone masked once, its SSN still dropped.
    for location, name in (("people.csv:3", "Rangeperson"), ("people.csv:4", "Castperson")):
        edits = {"name": name} | ({"qty": "4"} if location == "people.csv:4" else {})
        [result] = replay(project, project.source("drops"), address, ["people"],
                          Selection(locations=(location,)), edits)
        assert (result.replayed, result.still_quarantined) == (1, 0), location
    rows = query(database_url, "select id, email, phone, name, qty from raw_drops.people where id < 8 order by 1")
    assert rows == [
        (1, expected_hash("ok1@example.com"), "+* *** **** 0000", "Ada 1", 2),
        (2, expected_hash(planted("range")["email"]), "+* *** **** " + planted("range")["phone"][-4:],
         "Rangeperson", 50),
        (3, expected_hash(planted("cast")["email"]), "+* *** **** " + planted("cast")["phone"][-4:], "Castperson", 4),
    ]
    assert "ssn" not in {name for (name,) in query(
        database_url, "select column_name from information_schema.columns where table_name = 'people'")}
    # What the replay wrote back is treated too: the name given is masked in the replayed record.
    [(record, treatment, status)] = query(
        database_url, "select record, pii_treatment, status from raw_drops.people__quarantine where location = %s",
        "people.csv:3")
    assert status == "replayed"
    assert json.loads(record)["name"] == "*******rson" and json.loads(treatment)["name"] == "mask"
    assert json.loads(record)["email"] == expected_hash(planted("range")["email"])

    # The row Postgres refused was stored as loaded: a replay loads its hash as it is, not a hash of the hash.
    [result] = replay(project, project.source("drops"), address, ["events"], Selection(locations=("events.parquet:2",)),
                      {"at": "2026-01-01T00:00:00+00:00", "name": "Refusedperson"})
    assert (result.replayed, result.still_quarantined) == (1, 0)
    refused = planted("refused")
    assert query(database_url, "select email, phone, name from raw_drops.events where id = 2") == [
        (expected_hash(refused["email"], normalised=False), "+* *** **** " + refused["phone"][-4:], "Refusedperson")]
