"""maintenance rules and the tasks they open

Revision ID: 08db60eabbff
Revises: 9752aefe7edd
Create Date: 2026-12-06 17:15:30.210729
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "08db60eabbff"
down_revision = "9752aefe7edd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_rules",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=True),
        sa.Column("condition", sa.JSON(), nullable=False),
        sa.Column("due_in_s", sa.Float(precision=53), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_maintenance_rules_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_rules")),
    )
    with op.batch_alter_table("maintenance_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_rules_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "maintenance_tasks",
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("open_key", sa.String(length=65), nullable=True),
        sa.Column("opened_at", sa.Float(precision=53), nullable=False),
        sa.Column("due_at", sa.Float(precision=53), nullable=False),
        sa.Column("readings", sa.JSON(), nullable=False),
        sa.Column("condition_cleared_at", sa.Float(precision=53), nullable=True),
        sa.Column("closed_at", sa.Float(precision=53), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(precision=53), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_maintenance_tasks_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_maintenance_tasks_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_tasks")),
        sa.UniqueConstraint("open_key", name=op.f("uq_maintenance_tasks_open_key")),
    )
    with op.batch_alter_table("maintenance_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_maintenance_tasks_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_maintenance_tasks_rule_id"), ["rule_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_maintenance_tasks_tenant_id"), ["tenant_id"], unique=False
        )
        batch_op.create_index(
            "ix_maintenance_tasks_tenant_state", ["tenant_id", "state"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("maintenance_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_maintenance_tasks_tenant_state")
        batch_op.drop_index(batch_op.f("ix_maintenance_tasks_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_maintenance_tasks_rule_id"))
        batch_op.drop_index(batch_op.f("ix_maintenance_tasks_device_id"))

    op.drop_table("maintenance_tasks")
    with op.batch_alter_table("maintenance_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maintenance_rules_tenant_id"))

    op.drop_table("maintenance_rules")
