"""request keys: a save's idempotency key per user (X-Parse-Request-Id), kept 24 hours

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import dashboard.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('request_keys',
    sa.Column('user_id', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('class_name', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.String(length=16), nullable=False),
    sa.Column('created_at', dashboard.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('user_id', 'key')
    )


def downgrade() -> None:
    op.drop_table('request_keys')
