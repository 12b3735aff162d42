"""What one or more simulated days changed, per table, as primary-key sets and counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table

TABLES = ("customers", "products", "orders", "payments")


@dataclass(frozen=True)
class TableChanges:
    """Primary keys of rows a day created and of pre-existing rows it changed."""

    new: frozenset[int] = frozenset()
    updated: frozenset[int] = frozenset()

    def then(self, later: TableChanges) -> TableChanges:
        """Combine with a later period: a row created in either period counts as new only."""
        new = self.new | later.new
        return TableChanges(new=new, updated=(self.updated | later.updated) - new)


def _no_changes() -> dict[str, TableChanges]:
    return {name: TableChanges() for name in TABLES}


@dataclass(frozen=True)
class DayChanges:
    """Changes made by `Shop.init` or `Shop.advance`.

    `day` is the last simulated day (the shop's current day); `days` lists every
    day that was simulated, empty when nothing happened (e.g. a repeated init).
    """

    day: int
    days: tuple[int, ...] = ()
    tables: dict[str, TableChanges] = field(default_factory=_no_changes)

    @property
    def empty(self) -> bool:
        return not self.days

    def __getitem__(self, table: str) -> dict[str, int]:
        """Counts for one table, e.g. changes["orders"] == {"new": 41, "updated": 6}."""
        changes = self.tables[table]
        return {"new": len(changes.new), "updated": len(changes.updated)}

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts for every table: {"customers": {"new": n, "updated": m}, ...}."""
        return {name: self[name] for name in TABLES}

    def then(self, later: DayChanges) -> DayChanges:
        """These changes followed by `later` ones, as if they were one period."""
        return DayChanges(
            day=later.day,
            days=self.days + later.days,
            tables={name: self.tables[name].then(later.tables[name]) for name in TABLES},
        )

    def title(self) -> str:
        if not self.days:
            return f"Example shop: no changes (current day {self.day})"
        if len(self.days) == 1:
            return f"Example shop: day {self.days[0]}"
        return f"Example shop: days {self.days[0]}-{self.days[-1]}"

    def to_table(self) -> Table:
        """The counts as a small rich table, one row per source table."""
        table = Table(title=self.title())
        table.add_column("table")
        table.add_column("new", justify="right")
        table.add_column("updated", justify="right")
        for name, counts in self.counts().items():
            table.add_row(name, str(counts["new"]), str(counts["updated"]))
        return table
