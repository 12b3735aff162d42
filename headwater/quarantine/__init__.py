"""Quarantine: rows that cannot load are kept beside their table, with why and where, until replayed.

Each table `T` of a source has a side table `raw_<source>.T__quarantine` (see `records.py` for its
columns). Rows land there in the same dlt load package as the table's good rows, so a run either
records both or neither. headwater.load.replay sends them through the table's current steps and rules again;
report.py lists them, per table or row by row, and selection.py says which rows a command's filters pick.
protection.py treats the personal fields of every record as the table's `pii` steps do; purge.py deletes
resolved rows (a run's retention, `headwater quarantine purge`) and, asked by name, open ones.

Imports: common, processing, postgres.
"""

from headwater.quarantine.naming import QUARANTINE_SUFFIX, is_quarantine_table, quarantine_table_name, table_of

__all__ = ["QUARANTINE_SUFFIX", "is_quarantine_table", "quarantine_table_name", "table_of"]
