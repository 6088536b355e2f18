"""hardening: webhook delivery claims, token versions, login throttle by key, proposed tags

login_throttle holds only short-lived failure counters, so it is dropped and created in
its new shape (keyed by address+username or by address) rather than converted.

Revision ID: 0f7ccc3dfbb7
Revises: e05eb11571ed
Create Date: 2026-12-05 21:08:35.664443
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0f7ccc3dfbb7"
down_revision = "e05eb11571ed"
branch_labels = None
depends_on = None


def _login_throttle_by_key() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.Float(precision=53), nullable=False),
        sa.Column("blocked_until", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_index(
        op.f("ix_login_throttle_last_failure_at"),
        "login_throttle",
        ["last_failure_at"],
        unique=False,
    )


def _login_throttle_by_username() -> None:
    op.create_table(
        "login_throttle",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.Float(precision=53), nullable=False),
        sa.Column("locked_until", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_throttle")),
    )


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("proposed_tags", sa.JSON(), server_default="[]", nullable=False)
        )

    op.drop_table("login_throttle")
    _login_throttle_by_key()

    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claim_expires_at", sa.Float(precision=53), nullable=True))
        batch_op.create_index(
            "ix_notification_deliveries_claims", ["status", "claim_expires_at"], unique=False
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("token_version", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("token_version")

    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_deliveries_claims")
        batch_op.drop_column("claim_expires_at")
        batch_op.drop_column("claimed_by")

    op.drop_index(op.f("ix_login_throttle_last_failure_at"), table_name="login_throttle")
    op.drop_table("login_throttle")
    _login_throttle_by_username()

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("proposed_tags")
