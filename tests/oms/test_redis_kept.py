"""oms.redis_kept.KeptConnection: one command at a time on a connection kept per process and thread."""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid

import pytest
import redis

from oms.redis_kept import KeptConnection

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (set REDIS_URL)")


@pytest.fixture
def key():
    name = f"test-kept-{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


def kept(**options) -> KeptConnection:
    return KeptConnection(redis.ConnectionPool.from_url(REDIS_URL, **options))


def test_replies_and_errors_are_redis_pys_own(key):
    connection = kept()
    assert connection.execute("INCR", key) == 1
    assert connection.execute("INCR", key) == 2
    assert connection.execute("LPUSH", f"{key}:list", "a") == 1
    connection.execute("DEL", f"{key}:list")
    connection.execute("SET", key, "not a number")
    with pytest.raises(redis.ResponseError):
        connection.execute("INCR", key)
    assert connection.execute("GET", key) == b"not a number"  # still usable after an error reply


def test_a_dropped_connection_is_replaced_and_the_command_sent_once(key):
    connection = kept()
    my_id = connection.execute("CLIENT", "ID")
    redis.Redis.from_url(REDIS_URL).client_kill_filter(_id=my_id)  # as a Redis restart would
    assert connection.execute("INCR", key) == 1  # sent again on a new connection, counted once
    assert connection.execute("CLIENT", "ID") != my_id
    assert int(redis.Redis.from_url(REDIS_URL).get(key)) == 1


def test_a_timeout_is_raised_at_once_and_the_next_command_reconnects(key):
    connection = kept(socket_timeout=0.2)
    with pytest.raises(redis.TimeoutError):
        connection.execute("BLPOP", f"{key}:empty", 2)
    assert connection.execute("INCR", key) == 1


def test_each_thread_has_its_own_connection():
    connection = kept()
    ids: list[int] = []
    threads = [threading.Thread(target=lambda: ids.append(connection.execute("CLIENT", "ID"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids.append(connection.execute("CLIENT", "ID"))
    assert len(set(ids)) == 4


def _in_child(connection: KeptConnection, key: str, answers) -> None:
    answers.put((connection.execute("CLIENT", "ID"), connection.execute("INCR", key)))


def test_a_forked_child_makes_its_own_and_leaves_the_parents_alone(key):
    """gunicorn forks its workers: a connection made before the fork is never used, nor shut, by a child."""
    connection = kept()
    parents = connection.execute("CLIENT", "ID")
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_in_child, args=(connection, key, answers))
    child.start()
    childs, count = answers.get(timeout=10)
    child.join(10)
    assert child.exitcode == 0
    assert childs != parents and count == 1
    assert connection.execute("CLIENT", "ID") == parents  # the parent's connection still works
    assert connection.execute("INCR", key) == 2
