"""Landing files written the way the world writes them, each with the values it holds, cell by cell.

Every generator writes the bytes an exporter would (R's write.csv and write.table, Excel's
semicolon CSV in CP-1252, open-data portals' preambles and BOMs, PostgreSQL's and MySQL's text
dumps, ...) and returns the rows a faithful reader must produce from them: integers as ints, the
written decimals as the floats they denote, missing values as None, text exactly as written. The
lines a reader cannot take (a stray quote, a row too long) are listed with the rule that sets them
aside; nothing else may be quarantined.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any


@dataclass
class WorldFile:
    name: str
    content: bytes
    columns: list[str]  # the column names as they land (snake_case)
    rows: list[tuple]  # expected values, in file order
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (line, rule) of lines set aside
    skipped: int = 0  # lines that hold no row (preamble, header, blank, comment)
    settings: dict[str, Any] = field(default_factory=dict)  # the table's `files:` options beyond the glob
    lines: int = 0  # lines in the file


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


NAMES = ["Ana María", "Zoë O'Brien", "Jean-Luc Picard", "Smith, John", 'Bob "the builder"', "Ærø", "李雷", "NA"]


def _r_quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def r_write_csv(rows: int = 60, seed: int = 1) -> WorldFile:
    """R's write.csv(df): quoted strings and header, an unnamed row-name column, bare NA for missing values,
    TRUE/FALSE, doubles with 15 significant digits, and the string "NA" quoted (text, not missing)."""
    rng = random.Random(seed)
    lines = ['"","id","name","height","alive","born","score"']
    expected = []
    for i in range(1, rows + 1):
        name = NAMES[i % len(NAMES)] if i % 11 else None
        height = rng.uniform(1.4, 2.1) if i % 7 else None
        height_text = "NA" if height is None else f"{height:.15g}"
        alive = None if i % 13 == 0 else bool(i % 2)
        born = None if i % 17 == 0 else date(1950 + i % 60, 1 + i % 12, 1 + i % 28)
        score = None if i % 5 == 0 else i * 3
        lines.append(",".join([
            _r_quote(str(i)), str(i), "NA" if name is None else _r_quote(name), height_text,
            "NA" if alive is None else ("TRUE" if alive else "FALSE"),
            "NA" if born is None else _r_quote(born.isoformat()), "NA" if score is None else str(score),
        ]))
        expected.append((i, i, name, None if height is None else float(height_text), alive, born, score))
    return WorldFile("r_export.csv", ("\n".join(lines) + "\n").encode(),
                     ["column_1", "id", "name", "height", "alive", "born", "score"], expected, skipped=1,
                     lines=len(lines))


def mostly_integer_decimals(rows: int = 12_000) -> WorldFile:
    """An open-data column of whole numbers in which a few decimals appear late (past 10,000 rows)."""
    lines = ["station,reading,note"]
    expected = []
    for i in range(1, rows + 1):
        text = str(i % 97)
        if i in (10_500, 11_200, rows):
            text = {10_500: "0.03", 11_200: "2.5", rows: "-17.125"}[i]
        note = "" if i % 1000 else f"checked {i}"
        lines.append(f"S{i % 40},{text},{note}")
        expected.append((f"S{i % 40}", float(text), note or None))
    return WorldFile("readings.csv", ("\n".join(lines) + "\n").encode(), ["station", "reading", "note"], expected,
                     skipped=1, lines=len(lines))


def sparse_column(rows: int = 11_000) -> WorldFile:
    """A column that is empty for the first 10,500 rows, then holds integers."""
    lines = ["id,value"]
    expected = []
    for i in range(1, rows + 1):
        value = i if i > 10_500 else None
        lines.append(f"{i},{'' if value is None else value}")
        expected.append((i, value))
    return WorldFile("sparse.csv", ("\n".join(lines) + "\n").encode(), ["id", "value"], expected, skipped=1,
                     lines=len(lines))


def excel_semicolon_cp1252() -> WorldFile:
    """Excel's 'CSV (semicolon)' in Europe: ';' delimiter, decimal comma, CP-1252, CRLF line endings."""
    data = [(1, "Müller", "2,5", 2.5), (2, "Françoise", "10", 10.0), (3, "Øster; Bro", "-0,125", -0.125),
            (4, "Señor €uro", "", None)]
    lines = ["Nr;Name;Betrag"]
    for number, name, amount, _ in data:
        shown = f'"{name}"' if ";" in name else name
        lines.append(f"{number};{shown};{amount}")
    content = ("\r\n".join(lines) + "\r\n").encode("cp1252")
    return WorldFile("excel_eu.csv", content, ["nr", "name", "betrag"],
                     [(n, name, value) for n, name, _, value in data], skipped=1, lines=len(lines))


def tab_separated() -> WorldFile:
    rows = [(1, "alpha beta", "1.5"), (2, "with, comma", "2"), (3, "tab-free", "NA")]
    lines = ["id\tlabel\tweight"] + [f"{i}\t{label}\t{w}" for i, label, w in rows]
    return WorldFile("tabs.tsv", ("\n".join(lines) + "\n").encode(), ["id", "label", "weight"],
                     [(i, label, None if w == "NA" else float(w)) for i, label, w in rows], skipped=1, lines=4)


def r_write_table_space() -> WorldFile:
    """R's write.table(df): space-delimited, quoted strings, a header one field short (row names)."""
    rows = [(1, "setosa", 5.1), (2, "versi color", 7.0), (3, "NA", None)]
    lines = ['"species" "length"']
    for i, species, length in rows:
        lines.append(f'"{i}" "{species}" {"NA" if length is None else length}')
    return WorldFile("iris.txt", ("\n".join(lines) + "\n").encode(), ["row_names", "species", "length"],
                     [(i, species, length) for i, species, length in rows], skipped=1, lines=4)


def single_quoted() -> WorldFile:
    rows = [(1, "O'Reilly, Tim"), (2, "plain"), (3, "it's, 'quoted'")]
    lines = ["id,author"] + [f"{i},'{text.replace(chr(39), chr(39) * 2)}'" for i, text in rows]
    return WorldFile("single.csv", ("\n".join(lines) + "\n").encode(), ["id", "author"], rows, skipped=1, lines=4)


def postgres_text_dump() -> WorldFile:
    """PostgreSQL `COPY ... TO` text format: tabs, \\N for NULL, backslash escapes, no header."""
    lines = ["1\tplain\t\\N", "2\ttwo\\nlines\t3.5", "3\ttab\\there\t-1", "4\tback\\\\slash\t0",
             "5\t\\N\t\\N"]
    rows = [(1, "plain", None), (2, "two\nlines", 3.5), (3, "tab\there", -1.0), (4, "back\\slash", 0.0),
            (5, None, None)]
    return WorldFile("dump.tsv", ("\n".join(lines) + "\n").encode(), ["column_1", "column_2", "column_3"], rows,
                     lines=5)


def mysql_outfile() -> WorldFile:
    """MySQL `SELECT ... INTO OUTFILE`: tabs, \\N, a line break inside a value written as backslash + break."""
    content = b"10\tfirst\\\nsecond\t\\N\n11\tsimple\t7\n"
    return WorldFile("outfile.txt", content, ["column_1", "column_2", "column_3"],
                     [(10, "first\nsecond", None), (11, "simple", 7)], lines=3)


def latin1() -> WorldFile:
    text = "id,city\n1,Zürich\n2,Besançon\n3,Ålesund\n"
    return WorldFile("latin1.csv", text.encode("latin-1"), ["id", "city"],
                     [(1, "Zürich"), (2, "Besançon"), (3, "Ålesund")], skipped=1, lines=4)


def utf16_bom() -> WorldFile:
    text = "id\tword\r\n1\tnaïve\r\n2\t日本\r\n"
    return WorldFile("utf16.txt", text.encode("utf-16"), ["id", "word"], [(1, "naïve"), (2, "日本")], skipped=1,
                     lines=3)


def utf8_bom() -> WorldFile:
    text = "\ufeffid,amount\n1,3\n2,4\n"
    return WorldFile("bom.csv", text.encode("utf-8"), ["id", "amount"], [(1, 3), (2, 4)], skipped=1, lines=3)


def cr_only() -> WorldFile:
    return WorldFile("classic_mac.csv", b"id,name\r1,a\r2,b\r3,c\r", ["id", "name"],
                     [(1, "a"), (2, "b"), (3, "c")], skipped=1, lines=4)


def mixed_line_endings() -> WorldFile:
    return WorldFile("mixed.csv", b"id,name\r\n1,a\n2,b\r\n3,c\r4,d\n", ["id", "name"],
                     [(1, "a"), (2, "b"), (3, "c"), (4, "d")], skipped=1, lines=5)


def quoted_newlines() -> WorldFile:
    content = b'id,comment\n1,"line one\nline two"\n2,"say ""hi"""\n3,"a, b\r\nc"\n'
    return WorldFile("multiline.csv", content, ["id", "comment"],
                     [(1, "line one\nline two"), (2, 'say "hi"'), (3, "a, b\r\nc")], skipped=1, lines=6)


def portal_preamble() -> WorldFile:
    """An open-data portal's export: title and source lines, a blank line, then the table."""
    content = ("Air quality, hourly means\nSource: Environment Agency (2024)\n\n"
               "site,pm10,measured_at\nA1,12.5,2024-03-01T10:00:00Z\nB2,NA,2024-03-01T11:00:00+01:00\n").encode()
    return WorldFile("portal.csv", content, ["site", "pm10", "measured_at"],
                     [("A1", 12.5, utc(2024, 3, 1, 10)), ("B2", None, utc(2024, 3, 1, 10))], skipped=4, lines=6)


def commented_header() -> WorldFile:
    """Comment lines above the header: the exporting tool's name and the export date."""
    content = b"# exported by survey-tool 3.2\n# 2024-05-01\nid,answer\n1,yes\n2,no\n"
    return WorldFile("commented.csv", content, ["id", "answer"], [(1, "yes"), (2, "no")], skipped=3, lines=5)


def no_header() -> WorldFile:
    content = b"1,2024-01-05,19.99\n2,2024-01-06,5\n3,2024-01-07,0.5\n"
    return WorldFile("noheader.csv", content, ["column_1", "column_2", "column_3"],
                     [(1, date(2024, 1, 5), 19.99), (2, date(2024, 1, 6), 5.0), (3, date(2024, 1, 7), 0.5)], lines=3)


def two_line_header() -> WorldFile:
    """A spreadsheet with a units row under the column names."""
    content = b"station,temperature,rainfall\n,degC,mm\nA,12.5,0\nB,-3,1.25\n"
    return WorldFile("units.csv", content, ["station", "temperature_deg_c", "rainfall_mm"],
                     [("A", 12.5, 0.0), ("B", -3.0, 1.25)], skipped=2, lines=4)


def ragged_and_stray_quotes() -> WorldFile:
    """Short rows (padded with nulls), a trailing empty field, a row too long and a stray quote."""
    content = (b'id,name,amount\n1,"Smith, J",10\n2,Bob\n3,Eve,30,\n4,Dan,40,extra\n5,"Unclosed,50\n'
               b'6,Fay,60\n7,"Gil",70\n')
    rows = [(1, "Smith, J", 10), (2, "Bob", None), (3, "Eve", 30), (6, "Fay", 60), (7, "Gil", 70)]
    return WorldFile("ragged.csv", content, ["id", "name", "amount"], rows,
                     quarantined=[(5, "columns"), (6, "quote")], skipped=1, lines=8)


WORLD = [r_write_csv, excel_semicolon_cp1252, tab_separated, r_write_table_space, single_quoted,
         postgres_text_dump, mysql_outfile, latin1, utf16_bom, utf8_bom, cr_only, mixed_line_endings,
         quoted_newlines, portal_preamble, commented_header, no_header, two_line_header, ragged_and_stray_quotes,
         mostly_integer_decimals, sparse_column]
