"""How a flow run's log reads: one line per record on the terminal, everything in the project's run log.

Installed through Prefect's own logging configuration (prefect_logging.yml, selected by
headwater.common.runtime.quiet_telemetry). A run that fails the ordinary way has printed its summary
and the reasons; Prefect's traceback and state report of that same failure go to the run log only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect.logging.formatters import PrefectFormatter

from headwater.common import runtime

RUN_LOG = Path("logs") / "runs.log"
# The exception flows/daily.py raises after printing the summary of a failed run.
REPORTED_FAILURE = "RunFailed"


def run_log_path() -> Path:
    return runtime.state_dir() / RUN_LOG


def run_log_handler() -> logging.Handler:
    return RunLogHandler(run_log_path())


class RunLogHandler(logging.FileHandler):
    """Appends to the project's run log, folder and file made on the first record: a command that stops
    before logging anything (a broken config) leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class ConsoleFormatter(PrefectFormatter):
    """Prefect's format without the traceback: the record's line, and where the traceback was written."""

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info:
            return super().format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return f"{super().format(record)} (traceback in {run_log_path()})"
        finally:
            record.exc_info, record.exc_text = saved


class HideReportedFailure(logging.Filter):
    """Leaves out Prefect's records about a failure the run's summary has reported already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None and record.exc_info[0].__name__ == REPORTED_FAILURE:
            return False
        message = record.getMessage()
        return not (f"{REPORTED_FAILURE}:" in message or f"{REPORTED_FAILURE}(" in message
                    or "hook 'record_crash'" in message.lower())
