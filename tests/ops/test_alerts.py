"""Alerts: webhook events on a contract failure and on a freshness breach, a down webhook, plugin notifiers."""

from __future__ import annotations

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from headwater.plugins.manager import connector_registry, notifier_registry
from headwater.project.config import ConfigError, load_project
from tests.conftest import free_port
from tests.ops.test_history import PRODUCTS, add_freshness


@pytest.fixture
def webhook():
    """A local HTTP endpoint collecting the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def capture_plugin(tmp_path, monkeypatch):
    """An installed plugin (entry point in group headwater) whose notifier appends events to a file."""
    site = tmp_path / "site"
    info = site / "hw_capture-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hw-capture\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[headwater]\ncapture = hw_capture\n")
    (site / "hw_capture.py").write_text(textwrap.dedent('''\
        import json
        import pluggy

        hookimpl = pluggy.HookimplMarker("headwater")

        def capture(options):
            def send(event):
                with open(options["path"], "a") as file:
                    file.write(json.dumps(event) + "\\n")
            return send

        @hookimpl
        def register_notifiers(register):
            register("capture", capture, description="append events to a file")
    '''))
    monkeypatch.syspath_prepend(str(site))
    notifier_registry.cache_clear()
    yield
    notifier_registry.cache_clear()


def add_alerts(project_root, *entries: str) -> None:
    config = project_root / "headwater.yaml"
    config.write_text(config.read_text() + "\nalerts:\n" + "".join(f"  - {entry}\n" for entry in entries))


def test_alerts_config_is_validated(shop_project, monkeypatch):
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    add_alerts(shop_project, 'webhook: {url: "${ALERT_WEBHOOK_URL}"}', "webhook: {url: http://x.test/hook}",
               "pager: {}", "log: {level: loud}")
    with pytest.raises(ConfigError) as caught:
        load_project(shop_project / "headwater.yaml", connector_registry())
    message = str(caught.value)
    assert "alerts.0.webhook.url: ${ALERT_WEBHOOK_URL} is not set" in message
    assert "alerts.1.webhook.url: 'url' is a secret; reference it as ${NAME}" in message
    assert "alerts.2.pager: unknown notifier 'pager'; installed: log, webhook" in message
    assert "alerts.3.log: log takes only `level:`" in message


@pytest.mark.slow
def test_contract_failure_reaches_webhook_and_plugin(
    shop_project, database_url, prefect_api, monkeypatch, webhook, capture_plugin
):
    url, received = webhook
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    contract = shop_project / "quality" / "contracts" / "raw_shop_db" / "products.yml"
    contract.write_text(contract.read_text().replace("must_be_greater_than: 0", "must_be_greater_than: 1000", 1))
    add_alerts(shop_project, 'webhook: {url: "${ALERT_WEBHOOK_URL}"}', "log: {}",
               'capture: {path: "${PROJECT_DIR}/events.jsonl"}')
    from flows.daily import RunFailed, daily

    with pytest.raises(RunFailed):
        daily()
    assert len(received) == 1
    event = received[0]
    assert event["kind"] == "contract_failed" and event["project"] == "shop" and event["status"] == "failed"
    assert "raw_shop_db.products" in event["message"] and event["run_id"]
    row_count = [c for c in event["details"]["failed_checks"] if c["contract"] == "raw_shop_db.products"]
    assert [(c["check"], c["outcome"], c["measured"], c["threshold"]) for c in row_count] == [
        ("row_count", "failed", 20, "> 1000")
    ]
    plugin_events = [json.loads(line) for line in (shop_project / "events.jsonl").read_text().splitlines()]
    assert plugin_events == received


@pytest.mark.slow
def test_freshness_breach_alerts_and_a_down_webhook_does_not_fail_the_run(
    shop_project, database_url, prefect_api, monkeypatch, webhook
):
    url, received = webhook
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("DOWN_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/nobody-listens")
    add_freshness(shop_project, PRODUCTS, "{warn_after: 1h}")
    add_alerts(shop_project, 'webhook: {url: "${DOWN_WEBHOOK_URL}", timeout: 1, retries: 2}',
               'webhook: {url: "${ALERT_WEBHOOK_URL}"}')
    from flows.daily import daily

    summary = daily()
    assert summary.ok, summary.failures  # a warn breach and an unreachable webhook leave the run green
    assert [event["kind"] for event in received] == ["freshness_breach"]
    (breach,) = received[0]["details"]["breached_tables"]
    assert breach["table"] == "raw_shop_db.products" and breach["status"] == "warn"
    assert breach["age_seconds"] > 3600 and breach["warn_after_seconds"] == 3600
    assert received[0]["run_id"] == summary.run_id


def test_a_run_that_crashes_is_recorded_as_failed_and_alerted(
    shop_project, database_url, prefect_api, monkeypatch, webhook
):
    import flows.daily
    from tests.conftest import query

    url, received = webhook
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    add_alerts(shop_project, 'webhook: {url: "${ALERT_WEBHOOK_URL}"}')

    def broken_step(*args, **kwargs):  # stands in for an unexpected bug late in the run
        raise RuntimeError("freshness store unreachable")

    monkeypatch.setattr(flows.daily, "evaluate_freshness", broken_step)
    state = flows.daily.daily(return_state=True)
    assert state.is_failed()
    assert [(event["kind"], event["status"]) for event in received] == [("run_failed", "failed")]
    assert "run crashed: RuntimeError: freshness store unreachable" in received[0]["message"]
    runs = query(database_url, "select status, failures::text from headwater_ops.runs")
    assert len(runs) == 1 and runs[0][0] == "failed"
    assert "freshness store unreachable" in runs[0][1]
    ends = query(database_url, "select details->>'status' from headwater_ops.audit_log where kind = 'run.end'")
    assert ends == [("failed",)]  # and so is the end of the run in the audit trail
