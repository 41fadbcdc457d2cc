"""Real concurrency for the race tests: threads against PostgreSQL, each with its own connection."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def run_in_threads(count: int, work: Callable[[int], object]) -> list:
    """Start `count` threads together; each result is what work(i) returned or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def runner(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # the result is inspected by the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
