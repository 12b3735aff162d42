"""Progress lines logged from worker threads reach the run's own Prefect server."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import flow, task

from flows.tasks import progress_lines

pytestmark = pytest.mark.slow


@task
def report_from_a_thread(line: str) -> None:
    say = progress_lines()
    worker = threading.Thread(target=say, args=(line,))  # as dlt's load workers call a progress collector
    worker.start()
    worker.join()


@flow
def progress_flow(line: str) -> None:
    report_from_a_thread(line)


def test_a_line_logged_from_another_thread_reaches_the_runs_server(prefect_api, capfd):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    line = f"loaded 1,000 rows of threads_{time.time_ns()}"
    state = progress_flow(line, return_state=True)
    APILogHandler().flush()
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 20
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if any(log.message == line for log in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert [log.message for log in logs if log.message == line] == [line]
    assert "Starting temporary server" not in capfd.readouterr().err
