"""change log: committed changes as data, numbered in commit order; history sequence index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('change_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', dashboard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_change_log_at', 'change_log', ['at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for statement in dashboard.models.CHANGE_LOG_PG_DDL:
            op.execute(statement)
    op.create_index('ix_history_patient_sequence', 'status_history', ['patient_id', 'sequence'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_history_patient_sequence', table_name='status_history')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS change_log_number ON change_log')
        op.execute('DROP FUNCTION IF EXISTS change_log_number()')
        op.execute('DROP SEQUENCE IF EXISTS change_seq')
    op.drop_index('ix_change_log_at', table_name='change_log')
    op.drop_table('change_log')
