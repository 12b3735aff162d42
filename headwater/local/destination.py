"""Which Postgres Headwater writes to: the URL in the environment, else the project's embedded server."""

from __future__ import annotations

import os
from pathlib import Path

from headwater.postgres.address import DATABASE_URL_ENV, PostgresAddress


def uses_embedded_database() -> bool:
    return not os.environ.get(DATABASE_URL_ENV)


def destination_url_problem() -> str | None:
    """What is wrong with $HEADWATER_DATABASE_URL (a scheme, a connection parameter), or None: asked before a run
    starts, so that a bad URL stops it with one line instead of failing it once it runs."""
    url = os.environ.get(DATABASE_URL_ENV)
    try:
        if url:
            PostgresAddress.from_url(url)
    except ValueError as error:
        return str(error)
    return None


def resolve_destination(state_dir: Path, *, start: bool = True) -> PostgresAddress:
    """$HEADWATER_DATABASE_URL when set; otherwise the project's embedded PostgreSQL, started if needed."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return PostgresAddress.from_url(url)
    from headwater.local.embedded_postgres import LocalPostgres

    local = LocalPostgres(state_dir / "postgres")
    url = local.start() if start else local.url()
    if url is None:
        raise RuntimeError(
            f"the embedded PostgreSQL in {state_dir / 'postgres'} is not running; "
            f"start it with `headwater db url`, or set {DATABASE_URL_ENV}"
        )
    return PostgresAddress.from_url(url)
