"""The event log loses its index on `created_at`.

Every broadcast's log entry inserted into two B-trees, the table's and this index's; the index cost
about a tenth of an entry's append on SQLite (0.7 of 5.7 us of CPU per entry in batches of 16, a
table of ~130k rows; docs/performance.md, session 15). The log is written by one writer in the order
of its entries' times, so its offsets follow `created_at`: pruning deletes up to the first entry
logged at or after the cutoff, found by a scan in offset order that stops there, and the start-up
read takes the window, most of the table, in offset order.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_event_log_created", table_name="event_log")


def downgrade() -> None:
    op.create_index("ix_event_log_created", "event_log", ["created_at"])
