"""One event log row per publication, with every namespace it goes to.

A `test_output` goes to /project/{name} and to /monitoring; it was logged as two rows with two
offsets, each written and delivered on its own. Now a row's `targets` column holds the list of
`[namespace, rooms, skip]` it goes to, and the three columns are gone. Rows kept from before become
one-target rows.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("namespace", "rooms", "skip")


def upgrade() -> None:
    # Plain ADD and DROP COLUMN (SQLite 3.35+), not a rebuild: a rebuilt table would start the
    # AUTOINCREMENT sequence (migration 0004) over from the largest row kept.
    op.add_column("event_log", sa.Column("targets", sa.JSON, nullable=False, server_default="[]"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE event_log SET targets = json_array(json_array(namespace, json(rooms), json(skip)))"
        )
    else:
        op.execute(
            "UPDATE event_log SET targets = json_build_array(json_build_array(namespace, rooms, skip))"
        )
    for column in COLUMNS:
        op.drop_column("event_log", column)


def downgrade() -> None:
    # An entry keeps its first target only: the others are not recovered for the window.
    op.add_column("event_log", sa.Column("namespace", sa.String(200), nullable=False, server_default=""))
    op.add_column("event_log", sa.Column("rooms", sa.JSON, nullable=False, server_default="[]"))
    op.add_column("event_log", sa.Column("skip", sa.JSON, nullable=False, server_default="[]"))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE event_log SET namespace = json_extract(targets, '$[0][0]'), "
            "rooms = json(json_extract(targets, '$[0][1]')), skip = json(json_extract(targets, '$[0][2]'))"
        )
    else:
        op.execute(
            "UPDATE event_log SET namespace = targets->0->>0, rooms = targets->0->1, skip = targets->0->2"
        )
    op.drop_column("event_log", "targets")
