"""Run one Headwater load of a source and SIGKILL the process at a chosen point (test harness only).

    python -m tests.load.crash_child HEADWATER_YAML DESTINATION_URL SOURCE KILL_POINT [REFRESHED_TABLE]

With REFRESHED_TABLE the load is a `--full-refresh SOURCE.REFRESHED_TABLE`.

The kill points wrap dlt internals here, in the test process, so the product carries no test hooks:
  extract              after the first Arrow batch is written to the extract folder
  extract_committed    the extracted package committed, before dlt saves the pipeline's state and schemas
  refresh_emptied      a refreshed table passed through: emptied and its refresh recorded (committed), before
                       its rows are copied
  normalize            all files normalized, before the load package is committed
  normalize_committed  package committed to load/, its extracted copy not yet deleted
  load_before_commit   a copy job's rows ingested, before its transaction commits (also the rows copied
                       ahead during extract, headwater.postgres.copy_ahead, or passed through from the
                       source, before their job commits them)
  load_after_commit:T  table T's copy job committed, before dlt marks the job completed
  load_after_marker:T  table T's copy job committed and dlt wrote its pending-transition marker,
                       before the job file moved to completed (dlt completes it without re-running)
  passed_streaming     rows passed through from the source over several COPY streams: killed while the
                       streams copy (each has sent a few chunks), nothing committed
  passed_committing    the same, once every stream copied: the first stream's commit made, killed before
                       the second's
  load_recording       every job of the package committed (the merge into the final tables too), killed
                       before the load is recorded in _dlt_loads
  ahead_committing     the rows copied ahead during extract over 2 COPY streams: the first stream's
                       commit made, killed before the second's
  streams_committing:T table T's copy job runs in 2 COPY streams (headwater.postgres.copy_streams): the
                       first stream committed, killed before the second commits
  streams_lost:T       the same, but the second stream's connection is terminated by the server before
                       its commit (no kill): dlt retries the job in the same run
  set_aside_quarantined  rows Postgres refused written as a quarantine package, before the refused
                       job's file is rewritten without them
  set_aside_rewritten  the refused job's file rewritten, before the packages load

SOURCE `drops` is a landing-file project (tests.landing_project); any other is a sql_database one.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(kill_point: str) -> None:
    if kill_point == "extract":
        from dlt.extract.extractors import ArrowExtractor

        write_items = ArrowExtractor.write_items

        def write_then_die(self, *args, **kwargs):
            write_items(self, *args, **kwargs)
            self.item_storage.close_writers(self.load_id)  # the batch is on disk, as in a real mid-extract kill
            die()

        ArrowExtractor.write_items = write_then_die
    elif kill_point == "refresh_emptied":
        from headwater.postgres import copy_ahead

        empty = copy_ahead._empty_for_refresh

        def empty_then_die(*args, **kwargs):
            empty(*args, **kwargs)
            die()

        copy_ahead._empty_for_refresh = empty_then_die
    elif kill_point == "extract_committed":
        from dlt.extract.extract import Extract

        commit_packages = Extract.commit_packages

        def commit_then_die(self, *args, **kwargs):
            commit_packages(self, *args, **kwargs)
            die()

        Extract.commit_packages = commit_then_die
    elif kill_point.startswith("normalize"):
        from dlt.common.storages.load_storage import LoadStorage

        commit = LoadStorage.commit_new_load_package

        def commit_and_die(self, *args, **kwargs):
            if kill_point == "normalize":
                die()
            commit(self, *args, **kwargs)
            die()

        LoadStorage.commit_new_load_package = commit_and_die
    elif kill_point == "load_before_commit":
        from headwater.postgres.loader import StreamingParquetCopyJob

        connect = StreamingParquetCopyJob._connect

        def connect_without_commit(self):
            connection = connect(self)
            connection.commit = die
            return connection

        StreamingParquetCopyJob._connect = connect_without_commit
        from headwater.postgres.copy_ahead import AheadStream, PassedThrough

        AheadStream.commit = lambda self: die()
        PassedThrough.commit = lambda self: die()
    elif kill_point.startswith("load_after_commit:"):
        from headwater.postgres.loader import StreamingParquetCopyJob

        table, run = kill_point.split(":", 1)[1], StreamingParquetCopyJob.run

        def run_then_die(self):
            run(self)
            if self.load_table_name == table:
                die()

        StreamingParquetCopyJob.run = run_then_die
    elif kill_point.startswith("load_after_marker:"):
        from dlt.common.storages.load_package import PackageStorage

        table, save = kill_point.split(":", 1)[1], PackageStorage.save_pending_transition

        def save_then_die(self, load_id, file_name, *args, **kwargs):
            save(self, load_id, file_name, *args, **kwargs)
            if file_name.split(".", 1)[0] == table:
                die()

        PackageStorage.save_pending_transition = save_then_die
    elif kill_point == "load_recording":
        from headwater.postgres.loader import StreamingPostgresClient

        complete_load = StreamingPostgresClient.complete_load

        def die_before_recording(self, load_id):
            if not self.sql_client.is_staging_dataset_active:
                die()
            complete_load(self, load_id)

        StreamingPostgresClient.complete_load = die_before_recording
    elif kill_point == "ahead_committing":
        from headwater.postgres.copy_ahead import AheadStream

        def commit_first_then_die(self):
            self.connections[0].commit()
            die()

        AheadStream.commit = commit_first_then_die
    elif kill_point.startswith("passed_"):
        arm_passed(kill_point)
    elif kill_point.startswith("streams_"):
        arm_streams(*kill_point.split(":", 1))
    elif kill_point.startswith("set_aside_"):
        from headwater.load.refusals import _JobSearch

        rewrite = _JobSearch.rewrite

        def rewrite_and_die(self, *args, **kwargs):
            if kill_point == "set_aside_quarantined":
                die()
            rewrite(self, *args, **kwargs)
            die()

        _JobSearch.rewrite = rewrite_and_die
    else:
        raise SystemExit(f"unknown kill point {kill_point!r}")


def arm_passed(kill_point: str) -> None:
    """Rows passed through over several streams (connectors.sql_database.pass_through) killed while they copy, or
    between their commits."""
    from headwater.postgres.copy_ahead import PassedThrough, PassThroughTarget

    if kill_point == "passed_streaming":
        copy = PassThroughTarget.copy

        def dying(chunks):
            for number, chunk in enumerate(chunks):
                if number == 3:
                    die()
                yield chunk

        PassThroughTarget.copy = lambda self, columns, streams: copy(self, columns, [dying(s) for s in streams])
    else:
        def commit_first_then_die(self):
            self.connections[0].commit()
            die()

        PassedThrough.commit = commit_first_then_die


def arm_streams(how: str, table: str) -> None:
    """Table ``table``'s copy job in 2 streams of small batches; its second commit is killed or loses its connection."""
    import psycopg

    from headwater.postgres import loader
    from headwater.postgres.copy_streams import STREAMS_VARIABLE

    os.environ[STREAMS_VARIABLE] = "2"
    loader.COPY_BATCH_ROWS = 100  # the test's few thousand rows then reach both streams
    connect, commits = loader.StreamingParquetCopyJob._connect, []

    def connect_with_fault(self):
        connection = connect(self)
        if self.load_table_name != table:
            return connection
        commit = connection.commit

        def commit_with_fault():
            commits.append(self)
            if len(commits) == 2:
                if how == "streams_committing":
                    die()
                with connection.cursor() as cursor:  # the server ends this stream's connection, as a restart would
                    cursor.execute("select pg_backend_pid()")
                    pid = cursor.fetchone()[0]
                url = self._job_client.config.credentials.to_native_representation()
                with psycopg.connect(url, autocommit=True) as admin:
                    admin.execute("select pg_terminate_backend(%s)", (pid,))
            commit()

        connection.commit = commit_with_fault
        return connection

    loader.StreamingParquetCopyJob._connect = connect_with_fault


def main() -> None:
    path, destination_url, source, kill_point = sys.argv[1:5]
    refreshed = sys.argv[5] if len(sys.argv) > 5 else None
    arm(kill_point)
    if source == "drops":
        from headwater.plugins.manager import connector_registry
        from headwater.project.config import load_project
        from tests.landing_project import load_drops

        load_drops(load_project(Path(path), connector_registry()), destination_url)
    else:
        from headwater.load.reload import Reload
        from tests.load.helpers import load

        reload = Reload(full_refresh={source: frozenset({refreshed})}) if refreshed else None
        load(Path(path), destination_url, source, reload)
    print("finished without being killed")


if __name__ == "__main__":
    main()
