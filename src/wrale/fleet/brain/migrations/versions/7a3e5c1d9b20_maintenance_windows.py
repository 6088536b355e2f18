"""maintenance windows and the operators' overrides of them

Revision ID: 7a3e5c1d9b20
Revises: 4500ff9862de
Create Date: 2026-12-06 07:25:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7a3e5c1d9b20"
down_revision = "4500ff9862de"
branch_labels = None
depends_on = None


def _base() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=True),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("duration_s", sa.Float(precision=53), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        *_base(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_maintenance_windows_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_windows_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_maintenance_windows_tenant_scope", ["tenant_id", "scope"], unique=False
        )
    op.create_table(
        "maintenance_overrides",
        sa.Column("command_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        *_base(),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.id"],
            name=op.f("fk_maintenance_overrides_command_id_commands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_maintenance_overrides_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_overrides")),
        sa.UniqueConstraint("command_id", name=op.f("uq_maintenance_overrides_command_id")),
    )
    with op.batch_alter_table("maintenance_overrides", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_overrides_tenant_id"), ["tenant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("maintenance_overrides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_overrides_tenant_id"))
    op.drop_table("maintenance_overrides")
    with op.batch_alter_table("maintenance_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_windows_tenant_scope")
        batch_op.drop_index(batch_op.f("ix_maintenance_windows_tenant_id"))
    op.drop_table("maintenance_windows")
