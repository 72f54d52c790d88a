"""What a read replica must have replayed before it may serve a read (no I/O: positions only)."""

from __future__ import annotations

from scoreboard.adapters import open_store
from scoreboard.config import Settings
from scoreboard.store.postgres import PostgresStore
from scoreboard.store.postgres_replica import ReadReplica, parse_lsn


def replica(max_writers: int = 100) -> ReadReplica:
    return ReadReplica("postgresql://replica/db", 1.0, 1, {}, max_writers=max_writers)


def test_wal_positions_compare_across_the_high_word() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("0/FFFFFFFF") < parse_lsn("1/0") < parse_lsn("1/A")
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848


def test_a_user_who_wrote_needs_their_commit_replayed_and_others_need_nothing() -> None:
    positions = replica()
    positions.committed("alice", 500)
    positions.committed("bob", 300)

    assert positions.needed("alice") == 500
    assert positions.needed("bob") == 300
    assert positions.needed("carol") == 0


def test_the_board_needs_everything_this_process_committed() -> None:
    positions = replica()
    positions.committed("alice", 500)
    positions.committed("bob", 300)

    assert positions.needed(None) == 500


def test_a_later_write_raises_what_the_user_needs() -> None:
    positions = replica()
    positions.committed("alice", 100)
    positions.committed("alice", 700)

    assert positions.needed("alice") == 700


def test_when_full_caught_up_writers_are_forgotten_for_free() -> None:
    positions = replica(max_writers=4)
    for number in range(4):
        positions.committed(f"old{number}", 100 + number)
    positions.saw_replay(200)

    positions.committed("new", 300)

    assert positions.needed("old0") == 0  # the replica has it: nothing to wait for
    assert positions.needed("new") == 300


def test_forgotten_writers_become_a_floor_every_user_read_waits_for() -> None:
    positions = replica(max_writers=4)
    for number in range(5):  # nothing replayed: the oldest are forgotten, never lost
        positions.committed(f"user{number}", 100 * (number + 1))

    assert positions.needed("user0") == 300  # forgotten: waits for the floor, at least its own 100
    assert positions.needed("user4") == 500
    assert positions.needed("someone-else") == 300


def test_the_read_url_setting_gives_the_postgres_store_its_replica() -> None:
    settings = Settings(database_url="postgresql://primary/db", database_read_url="postgresql://replica/db")

    store = open_store(settings)

    assert isinstance(store, PostgresStore)
    assert store.replica is not None
    assert store.replica.url == "postgresql://replica/db"
    without = open_store(Settings(database_url="postgresql://primary/db"))
    assert isinstance(without, PostgresStore)
    assert without.replica is None
