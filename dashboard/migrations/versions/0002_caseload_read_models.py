"""caseload read models

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:40:52.909101
"""
from alembic import op
import sqlalchemy as sa
import dashboard.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patient_activity',
    sa.Column('patient_id', sa.String(length=16), nullable=False),
    sa.Column('last_session_at', dashboard.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('open_follow_ups', sa.Integer(), nullable=False),
    sa.Column('equipment_out', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('patient_id')
    )
    op.create_table('score_summaries',
    sa.Column('patient_id', sa.String(length=16), nullable=False),
    sa.Column('score_type', sa.String(length=32), nullable=False),
    sa.Column('latest_value', sa.Float(), nullable=False),
    sa.Column('latest_date', dashboard.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('previous_value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('patient_id', 'score_type')
    )


def downgrade() -> None:
    op.drop_table('score_summaries')
    op.drop_table('patient_activity')
