"""change log: NOTIFY on each row (PostgreSQL), the wake-up of other instances

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:00:00
"""
from alembic import op
import dashboard.models


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for statement in dashboard.models.CHANGE_LOG_NOTIFY_DDL:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS change_log_notify ON change_log')
        op.execute('DROP FUNCTION IF EXISTS change_log_notify()')
