"""The four roles of ACCESS.md, one enum for the whole app (a StrEnum: stored and sent as its text)."""
from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    LEAD = "lead"
    THERAPIST = "therapist"
    CONTRIBUTOR = "contributor"
    VIEWER = "viewer"
