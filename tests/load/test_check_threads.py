"""`headwater check` reads each source in a thread of its own; dlt keeps a thread's contexts (the active pipeline
and its state) by thread id and never drops them, so a check thread that gets the id of a thread that ended
after a load must not see that load's pipeline, or its incremental resources start from the load's cursors and
read nothing."""

from __future__ import annotations

import threading

import dlt
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from headwater.load.checks import _with_timeout


def test_a_check_thread_with_the_id_of_an_ended_loading_thread_has_no_pipeline(tmp_path):
    ended: list[int] = []

    def load_in_a_thread() -> None:
        dlt.pipeline(pipeline_name="loaded_elsewhere", pipelines_dir=str(tmp_path))  # active in this thread
        assert Container()[PipelineContext].is_active()
        ended.append(threading.get_ident())

    def what_the_check_sees() -> tuple[int, bool]:
        return threading.get_ident(), Container()[PipelineContext].is_active()

    seen = []
    for _ in range(20):  # a thread's id is given again to a later thread, here nearly always the next one
        loader = threading.Thread(target=load_in_a_thread)
        loader.start()
        loader.join()
        ident, active = _with_timeout(what_the_check_sees, 10)
        if ident == ended[-1]:
            seen.append(active)
    assert seen, "no check thread got the id of an ended one"
    assert not any(seen)
