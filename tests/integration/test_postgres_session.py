"""`store/postgres_session.py`: statements straight over libpq, against a real server.
What the writer relies on: answers in the order sent, the first error of a transaction
raised wherever it is waited for, nothing of a failed transaction kept, and the session
usable after it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from axme_daemon.store.postgres_session import Session

_TABLE = b"CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, doc JSONB, n BIGINT)"
_INSERT = b"INSERT INTO t (id, name, doc, n) VALUES ($1, $2, $3, $4)"


@pytest.fixture
def session(postgresql_url: str) -> Iterator[Session]:
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute(_TABLE)
        yield Session(db)


@pytest.fixture
def other(postgresql_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """Another connection to the database: what other daemons see."""
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        yield db


def _count(db: psycopg.Connection[tuple[object, ...]]) -> int:
    row = db.execute("SELECT count(*) FROM t").fetchone()
    assert row is not None
    return int(str(row[0]))


def _two_rows_of_one_id(session: Session) -> None:
    """A transaction whose second insert the server refuses, neither waited for."""
    session.begin()
    session.send(_INSERT, [1, "a", None, 1])
    session.send(_INSERT, [1, "b", None, 1])


def test_rows_come_by_column_name_with_their_types(session: Session) -> None:
    session.wait(session.send(_INSERT, [1, "ünï", '{"a": [1, 2]}', 2**40]))
    session.wait(session.send(_INSERT, [2, "two", None, 5]))  # same text, other types
    rows = session.rows(session.send(b"SELECT * FROM t ORDER BY id"))
    assert rows == [
        {"id": 1, "name": "ünï", "doc": {"a": [1, 2]}, "n": 2**40},
        {"id": 2, "name": "two", "doc": None, "n": 5},
    ]
    assert session.rows(session.send(b"SELECT * FROM t WHERE id = $1", [3])) == []
    again = session.send(b"SELECT * FROM t ORDER BY id")
    assert session.rows(again) == rows  # the prepared statement, used again


def test_outside_a_transaction_each_statement_commits_alone(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    session.wait(session.send(_INSERT, [1, "a", None, 1]))
    assert _count(other) == 1
    with pytest.raises(psycopg.errors.UniqueViolation):
        session.wait(session.send(_INSERT, [1, "again", None, 1]))
    assert session.rowcount(session.send(b"UPDATE t SET n = n + 1")) == 1  # usable after
    assert _count(other) == 1


def test_a_transaction_is_seen_by_others_only_once_committed(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    session.begin()
    session.send(_INSERT, [1, "a", None, 1])  # not waited for
    # A read inside waits (a flush request, not a sync): it sees the write, others do not.
    assert session.rows(session.send(b"SELECT name FROM t")) == [{"name": "a"}]
    assert _count(other) == 0
    session.commit()
    assert _count(other) == 1
    assert not session.in_transaction


def test_a_failed_write_nobody_waited_for_fails_the_next_answer_and_the_commit(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    session.wait(session.send(_INSERT, [1, "a", None, 1]))
    session.begin()
    session.send(_INSERT, [2, "kept?", None, 1])
    session.send(_INSERT, [1, "taken", None, 1])  # refused: id 1 exists
    after = session.send(b"SELECT count(*) AS n FROM t")
    with pytest.raises(psycopg.errors.UniqueViolation):  # the first error, not "aborted"
        session.rows(after)
    with pytest.raises(psycopg.errors.UniqueViolation):
        session.commit()
    session.recover()
    assert _count(other) == 1  # nothing of the transaction
    session.begin()  # and the session goes on
    session.send(_INSERT, [3, "next", None, 1])
    session.commit()
    assert _count(other) == 2


def test_an_error_only_the_commit_hears_of_is_raised_there(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    _two_rows_of_one_id(session)
    with pytest.raises(psycopg.errors.UniqueViolation):
        session.commit()
    session.recover()
    assert _count(other) == 0
    assert session.rows(session.send(b"SELECT 1 AS one")) == [{"one": 1}]


def test_a_statement_the_server_cannot_prepare_fails_every_time(session: Session) -> None:
    """A failed prepare is forgotten: sending it again prepares it again (and fails the
    same way), rather than running a statement name the server never had."""
    for _ in range(2):
        with pytest.raises(psycopg.errors.UndefinedColumn):
            session.wait(session.send(b"SELECT nothing FROM t WHERE id = $1", [1]))
    session.begin()
    session.send(b"SELECT nothing FROM t")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        session.commit()
    session.recover()
    with pytest.raises(psycopg.errors.UndefinedColumn):
        session.wait(session.send(b"SELECT nothing FROM t"))


def test_a_lost_connection_raises_an_operational_error(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    pid = session.conn.info.backend_pid
    other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        session.rows(session.send(b"SELECT 1 AS one"))


def test_after_an_error_a_read_raised_recover_rolls_back(
    session: Session, other: psycopg.Connection[tuple[object, ...]]
) -> None:
    """The writer's path when a rule's read raises: straight to `recover`, no COMMIT."""
    _two_rows_of_one_id(session)
    with pytest.raises(psycopg.errors.UniqueViolation):
        session.rows(session.send(b"SELECT count(*) AS n FROM t"))
    session.recover()
    assert not session.in_transaction
    assert session.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    session.begin()
    session.send(_INSERT, [2, "c", None, 1])
    session.commit()
    assert session.rows(session.send(b"SELECT id FROM t")) == [{"id": 2}]
    assert _count(other) == 1
