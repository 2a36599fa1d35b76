"""login attempts per key and minute: one sign-in rate limit shared by every instance

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_attempts',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('minute', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', 'minute'),
    )


def downgrade() -> None:
    op.drop_table('login_attempts')
