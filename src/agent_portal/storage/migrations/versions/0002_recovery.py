"""Connection state recovery: the event log and the sessions of disconnected sockets.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column(
            "offset", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("rooms", sa.JSON, nullable=False),
        sa.Column("skip", sa.JSON, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_event_log_created", "event_log", ["created_at"])
    op.create_table(
        "recovery_sessions",
        sa.Column("pid", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("disconnected_at", TS),
    )


def downgrade() -> None:
    op.drop_table("recovery_sessions")
    op.drop_table("event_log")
