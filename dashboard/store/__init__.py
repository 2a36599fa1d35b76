"""The store: the only door to the data. Every call takes the acting principal (ACCESS.md)."""
from __future__ import annotations

from dashboard.store.accounts import SignedIn
from dashboard.store.bulk import BulkMixin
from dashboard.store.caseload import BoardItem, CaseloadMixin, CaseloadRow, LatestScore


class Store(BulkMixin, CaseloadMixin):
    """Accounts, records, care teams and read models, each in its own module under store/."""


__all__ = ["Store", "SignedIn", "CaseloadRow", "LatestScore", "BoardItem"]
