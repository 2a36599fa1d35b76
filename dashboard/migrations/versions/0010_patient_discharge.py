"""patients: the discharge date and reason, set with `archived` when a lead discharges a patient

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 14:30:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discharged_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('discharge_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_column('discharge_reason')
        batch_op.drop_column('discharged_on')
