"""`headwater inspect` shows what the connector detects in a table's files, in the form that pins it."""

from __future__ import annotations

import textwrap

import yaml

from headwater.cli import main


def test_inspect_shows_the_dialect_header_and_types_and_the_settings_that_pin_them(tmp_path, monkeypatch, capsys):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "eu.csv").write_bytes("Export 2024\n\nNr;Name;Betrag\r\n1;Müller;2,5\r\n2;Bob;3\r\n".encode("cp1252"))
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          portal:
            connector: filesystem
            settings: {{bucket_url: "{landing}", files: {{payments: "*.csv"}}}}
        """))
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("COLUMNS", "160")

    assert main(["inspect", "portal.payments"]) == 0
    output = capsys.readouterr().out
    assert "dialect: semicolon-delimited, cp1252, CRLF line endings, quote \", 2 preamble lines, header, " \
           "decimal ," in output
    assert "Nr     │ bigint" in output and "Name   │ text" in output and "Betrag │ double" in output
    pinned = yaml.safe_load(output.split("under the source's settings:")[1])
    assert pinned["files"]["payments"]["glob"] == "*.csv"
    assert {key: pinned["files"]["payments"]["csv"][key] for key in ("delimiter", "encoding", "skip_lines", "decimal",
                                                                      "header")} == {
        "delimiter": ";", "encoding": "cp1252", "skip_lines": 2, "decimal": ",", "header": 1}


def test_inspect_names_what_it_cannot_inspect(tmp_path, monkeypatch, capsys):
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          files:
            connector: filesystem
            settings: {{bucket_url: "{tmp_path}", files: {{orders: "*.csv"}}}}
        """))
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    assert main(["inspect", "files.nope"]) == 2
    assert "source 'files' has no table 'nope'; tables: orders" in capsys.readouterr().err
    assert main(["inspect", "other"]) == 2
    assert "no source 'other'; sources: files" in capsys.readouterr().err
