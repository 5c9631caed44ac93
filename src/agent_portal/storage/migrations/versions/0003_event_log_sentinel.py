"""The event log's insert sentinel: a batch of entries is one INSERT ... RETURNING on every backend.

SQLite cannot tie the rowids it assigns to the order of a multi-row VALUES, so SQLAlchemy wrote an
ordered batch one row at a time there; a client-numbered column lets it write the batch at once and
sort what RETURNING hands back (tables.event_log). Old rows keep NULL: it is only read back by the
INSERT that wrote it.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_log", sa.Column("sentinel", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_log") as batch:
        batch.drop_column("sentinel")
