"""Data for a scenario, made through the store in the bench process before the server starts.

Passwords are hashed with a cheap argon2 setting (the cost is stored in the hash, so the server
verifies them as they are); sessions are made with `log_in`, so their tokens are real.
"""
from __future__ import annotations

import random
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

from dashboard.access import Principal
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.store import Store

PASSWORD = "bench password 123"
MEASURES = (("barthel", 0, 100), ("berg", 0, 56), ("tinetti", 0, 28))


@asynccontextmanager
async def open_store(database_url: str, data_dir: Path) -> AsyncIterator[Store]:
    settings = Settings(database_url=database_url, secret_key="bench-secret-not-for-production",
                        data_dir=data_dir, argon2_memory_kib=256, argon2_time_cost=1)
    store = Store(Database(database_url), settings=settings)
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
        await store.db.dispose()


@dataclass
class Account:
    user_id: str
    username: str
    token: str
    principal: Principal


@dataclass
class World:
    lead: Account
    therapists: list[Account] = field(default_factory=list)
    members: list[Account] = field(default_factory=list)  # contributors on patient X's care team
    patients: list[str] = field(default_factory=list)  # objectIds; patients[0] is "X"
    outsiders: list[Account] = field(default_factory=list)  # contributors on other patients' teams

    @property
    def x(self) -> str:
        return self.patients[0]


async def _account(store: Store, lead: Principal, username: str, role: str) -> Account:
    user = await store.create_user(principal=lead, username=username, email=f"{username}@bench.invalid",
                                   password=PASSWORD, role=role)
    signed = await store.log_in(username=username, password=PASSWORD)
    return Account(user.id, username, signed.token, signed.principal)


async def build_world(store: Store, *, patients: int = 1, therapists: int = 1, members: int = 0,
                      outsiders: int = 0) -> World:
    """A lead, therapists owning `patients` round robin, `members` on X's care team, and
    `outsiders` each on the care team of one other patient (round robin over patients 1..)."""
    lead_user = await store.bootstrap_lead(username="bench-lead", email="lead@bench.invalid", password=PASSWORD)
    signed = await store.log_in(username="bench-lead", password=PASSWORD)
    lead = Account(lead_user.id, lead_user.username, signed.token, signed.principal)
    world = World(lead=lead)
    for i in range(therapists):
        world.therapists.append(await _account(store, lead.principal, f"bench-t{i}", "therapist"))
    world.patients = await store.import_patients(principal=lead.principal, rows=[{
        "patientId": f"BENCH-{i:06d}", "displayName": f"Patient {i:06d}",
        "primaryTherapist": world.therapists[i % therapists].user_id,
        "mobilityStatus": "supervision"} for i in range(patients)])
    for i in range(members):
        account = await _account(store, lead.principal, f"bench-m{i}", "contributor")
        await store.add_care_team_member(principal=lead.principal, patient_id=world.x, user_id=account.user_id)
        world.members.append(account)
    others = world.patients[1:]
    for i in range(outsiders if others else 0):
        account = await _account(store, lead.principal, f"bench-o{i}", "contributor")
        await store.add_care_team_member(principal=lead.principal, patient_id=others[i % len(others)],
                                         user_id=account.user_id)
        world.outsiders.append(account)
    return world


def score_rows(patient_ids: list[str], per_patient: dict[str, int] | int, *, seed: int = 5) -> list[dict]:
    """Weekly-ish scores across three measures, oldest first, in valid ranges."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    rows: list[dict] = []
    for pid in patient_ids:
        n = per_patient if isinstance(per_patient, int) else per_patient.get(pid, 0)
        for k in range(n):
            score_type, low, high = MEASURES[k % len(MEASURES)]
            rows.append({"patient": pid, "scoreType": score_type, "scoreValue": rng.randint(low, high),
                         "scoreDate": now - timedelta(hours=(n - k) * 6)})
    return rows


def note_rows(patient_ids: list[str], per_patient: int, *, seed: int = 6) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    return [{"patient": pid, "sessionType": "treatment", "noteText": f"Bench session note {k}.",
             "followUpNeeded": rng.random() < 0.1, "sessionDate": now - timedelta(days=per_patient - k)}
            for pid in patient_ids for k in range(per_patient)]
