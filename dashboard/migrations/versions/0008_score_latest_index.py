"""scores: the index under "latest score" includes created_at, its tie-breaker

A burst of scores on one date made each summary recompute read every score of that date (ORDER BY
score_date DESC, created_at DESC LIMIT 1 had no index under created_at): 2.1 ms, now 0.05 ms.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:40:00
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index('ix_scores_patient_type_date', table_name='mobility_scores')
    op.create_index('ix_scores_patient_type_date_created', 'mobility_scores',
                    ['patient_id', 'score_type', 'score_date', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_scores_patient_type_date_created', table_name='mobility_scores')
    op.create_index('ix_scores_patient_type_date', 'mobility_scores', ['patient_id', 'score_type', 'score_date'])
