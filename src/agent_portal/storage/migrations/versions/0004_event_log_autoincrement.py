"""Event log offsets are never handed out twice on SQLite.

The offset was a plain INTEGER PRIMARY KEY, whose next value is one more than the largest row
*left*: once the log was pruned empty (the window passed without a broadcast) or the server started
on an empty log, offsets began at 1 again. A client holding an older, larger offset was then either
refused recovery or, with no offset yet, recovered with a silent hole (tests/storage). AUTOINCREMENT
keeps the largest offset ever given in `sqlite_sequence`. The table is rebuilt (SQLite cannot add
AUTOINCREMENT in place) with its rows, and the sequence starts past every offset given so far: the
largest kept, or the clock in microseconds if none is kept (as the cluster's Redis log starts), so
that no offset handed out before this migration comes again. PostgreSQL's BIGSERIAL never repeats.

Revision ID: 0004
Revises: 0003
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("event_log", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass
    kept = bind.execute(sa.text('SELECT max("offset") FROM event_log')).scalar()
    start = max(int(kept or 0), time.time_ns() // 1000)
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'event_log'"))
    bind.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('event_log', :seq)"), {"seq": start}
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("event_log", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
