"""The store: the only door to the data. Every call takes the acting principal (ACCESS.md)."""
from __future__ import annotations

from dashboard.store.accounts import SignedIn
from dashboard.store.care_team import TeamMember
from dashboard.store.caseload import BoardItem, CaseloadRow, LatestScore
from dashboard.store.imports import ImportsMixin
from dashboard.store.rules import Permissions


class Store(ImportsMixin):
    """Accounts, records, care teams and read models, each in its own module under store/."""


__all__ = ["Store", "SignedIn", "CaseloadRow", "LatestScore", "BoardItem", "Permissions", "TeamMember"]
