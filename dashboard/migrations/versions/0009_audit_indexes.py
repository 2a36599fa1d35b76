"""audit_log: composite indexes for the lead's audit view (each filter, then the order at, id)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

NEW = {
    'ix_audit_at_id': ['at', 'id'],
    'ix_audit_patient_at': ['patient_ref', 'at', 'id'],
    'ix_audit_actor_at': ['actor_id', 'at', 'id'],
    'ix_audit_class_at': ['class_name', 'at', 'id'],
    'ix_audit_outcome_at': ['outcome', 'at', 'id'],
}


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        for name, columns in NEW.items():
            batch_op.create_index(name, columns, unique=False)
        # Both are prefixes of the new (at, id) and (patient_ref, at, id): kept, they only slow the writes.
        batch_op.drop_index('ix_audit_at')
        batch_op.drop_index('ix_audit_patient')


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_patient', ['patient_ref'], unique=False)
        batch_op.create_index('ix_audit_at', ['at'], unique=False)
        for name in reversed(NEW):
            batch_op.drop_index(name)
