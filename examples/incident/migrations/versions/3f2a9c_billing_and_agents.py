"""billing and agents

Revision ID: 3f2a9c
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "3f2a9c"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("plan", sa.Text, nullable=False),
    )
    op.create_table(
        "credit_transactions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("subscription_id", sa.BigInteger, sa.ForeignKey("subscriptions.id")),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
    )
    op.create_table(
        "agent_executions",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("agent_executions")
    op.drop_table("credit_transactions")
    op.drop_table("subscriptions")
