"""End-to-end benchmark: whole commands (Headwater, raw COPY, plain dlt and peer tools) timed from spawn to exit.

Kept apart from the in-process cases of ``benchmarks.run``: here every contender is a shell command, each
peer runs from its own virtualenv, rounds are interleaved and every landed table is verified.
Run it as ``python -m benchmarks.endtoend``.
"""
