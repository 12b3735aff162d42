"""read_ahead: items in order, errors raised in the caller, the producer stopped when the caller stops."""

from __future__ import annotations

import threading

import pytest

from headwater.load.read_ahead import read_ahead


def test_items_arrive_in_order_and_are_produced_in_another_thread():
    producers = set()

    def numbers():
        for number in range(100):
            producers.add(threading.current_thread().name)
            yield number

    assert list(read_ahead(numbers(), depth=3)) == list(range(100))
    [producer] = producers
    assert producer.endswith("headwater-read-ahead") and producer != threading.current_thread().name


def test_the_producer_sees_the_pipeline_of_the_thread_that_loads(tmp_path):
    """A load may run in any thread (sources load side by side); its resources read dlt's pipeline context."""
    import dlt

    seen = []

    def load_in_a_worker_thread():
        dlt.pipeline("read_ahead_context", pipelines_dir=str(tmp_path))  # the thread's active pipeline

        def names():
            yield dlt.current.pipeline().pipeline_name

        seen.extend(read_ahead(names()))

    worker = threading.Thread(target=load_in_a_worker_thread)
    worker.start()
    worker.join()
    assert seen == ["read_ahead_context"]


def test_the_producer_started_in_a_dlt_pool_thread_sees_the_pipeline_that_pool_serves(tmp_path):
    """dlt runs a parallelized resource in its own pool threads, named after the thread of the pipeline."""
    import dlt
    from dlt.common.configuration.container import Container

    seen = []

    def names():
        yield dlt.current.pipeline().pipeline_name

    def in_the_pool():
        seen.extend(read_ahead(names()))

    def load_in_a_worker_thread():
        dlt.pipeline("read_ahead_pool", pipelines_dir=str(tmp_path))
        pool_thread = threading.Thread(target=in_the_pool, name=f"{Container.thread_pool_prefix()}extract_0")
        pool_thread.start()
        pool_thread.join()

    worker = threading.Thread(target=load_in_a_worker_thread)
    worker.start()
    worker.join()
    assert seen == ["read_ahead_pool"]


def test_an_error_while_producing_is_raised_in_the_caller_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise ValueError("landing.csv: cannot be read")

    received = []
    with pytest.raises(ValueError, match="landing.csv: cannot be read"):
        for item in read_ahead(failing()):
            received.append(item)
    assert received == [1, 2]


def test_a_caller_that_stops_early_stops_the_producer_and_runs_its_cleanup():
    cleaned = threading.Event()
    produced = []

    def endless():
        try:
            number = 0
            while True:
                produced.append(number)
                yield number
                number += 1
        finally:
            cleaned.set()

    ahead = read_ahead(endless(), depth=2)
    assert [next(ahead) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert cleaned.is_set()
    assert len(produced) <= 5 + 2 + 1  # never more than depth items (and the one in hand) ahead
    assert not [thread for thread in threading.enumerate() if thread.name.endswith("headwater-read-ahead")]
