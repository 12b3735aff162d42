"""The Prefect global concurrency limit of the destination (`deploy.destination_limit`, default
`headwater-destination`): each per-source load holds one of its slots while it writes (flows/source.py), so at
most `deploy.destination_slots` loads write at once whatever the number of workers and pools."""

from __future__ import annotations

from dataclasses import dataclass

from prefect.exceptions import ObjectNotFound

from headwater.deployments.server import PrefectServer, prefect_client


@dataclass(frozen=True)
class LimitStatus:
    name: str
    slots: int
    change: str  # created | updated from N slots | unchanged

    def describe(self) -> str:
        return (f"Global concurrency limit {self.name}: {self.slots} slot{'s' if self.slots != 1 else ''} "
                f"({self.change}); each per-source load holds one while it writes")


def ensure_destination_limit(server: PrefectServer, name: str, slots: int) -> LimitStatus:
    """The limit with `slots` slots, created when missing and updated in place otherwise (never a second one)."""
    with prefect_client(server) as client:
        try:
            before = client.read_global_concurrency_limit_by_name(name).limit
        except ObjectNotFound:
            before = None
        client.upsert_global_concurrency_limit_by_name(name, slots)
    change = "created" if before is None else "unchanged" if before == slots else f"updated from {before} slots"
    return LimitStatus(name=name, slots=slots, change=change)
