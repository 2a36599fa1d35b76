"""Loads the synthetic demo data in data/demo.json: users of every role, patients, and a history."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from dashboard.access import Principal
from dashboard.config import DATA_DIR
from dashboard.models import User
from dashboard.store import Store

SESSION_TEXT = [
    "Practised sit-to-stand transfers with verbal cues.",
    "Worked on standing balance at the sink for grooming.",
    "Reviewed home set-up with family; discussed rails.",
    "Upper-limb strengthening programme, tolerated well.",
    "Kitchen assessment: safe with perching stool.",
]


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str


async def load_demo(store: Store, path: Path = DATA_DIR / "demo.json", *, seed: int = 7) -> list[DemoLogin]:
    """Idempotent: an installation that already has users gets nothing new."""
    spec = json.loads(path.read_text())
    password = spec["password"]
    logins = [DemoLogin(u["username"], u["role"], password) for u in spec["users"]]
    async with store.db.read() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            return logins
    lead_spec, *others = spec["users"]
    lead_user = await store.bootstrap_lead(username=lead_spec["username"], email=lead_spec["email"],
                                           password=password)
    lead = Principal(lead_user.id, None, lead_user.username)
    users = {lead_user.username: lead_user}
    for u in others:
        users[u["username"]] = await store.create_user(
            principal=lead, username=u["username"], email=u["email"], password=password, role=u["role"])
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    for p in spec["patients"]:
        patient = await store.create(principal=lead, class_name="Patient", fields={
            "patientId": p["patientId"], "displayName": p["displayName"],
            "dateOfBirth": datetime.fromisoformat(p["dateOfBirth"]).replace(tzinfo=timezone.utc),
            "primaryTherapist": users[p["therapist"]].id, "mobilityStatus": p["status"],
            **({"bed": p["bed"]} if p.get("bed") else {})})
        for member in p["team"]:
            await store.add_care_team_member(principal=lead, patient_id=patient.id, user_id=users[member].id)
        therapist = Principal(users[p["therapist"]].id, None, p["therapist"])
        barthel, tug, berg = rng.randint(25, 60), rng.uniform(14, 30), rng.randint(20, 40)
        for week in range(6, 0, -1):
            when = now - timedelta(days=week * 7, hours=rng.randint(0, 6))
            barthel = min(100, barthel + rng.randint(-3, 9))
            tug = max(6.0, tug - rng.uniform(-1, 3))
            berg = min(56, berg + rng.randint(-2, 5))
            for score_type, value in (("barthel", barthel), ("tug", round(tug, 1)), ("berg", berg)):
                await store.record_score(principal=therapist, patient_id=patient.id, score_type=score_type,
                                         value=value, score_date=when)
            await store.add_note(principal=therapist, patient_id=patient.id, session_type="treatment",
                                 text=rng.choice(SESSION_TEXT), session_date=when,
                                 follow_up=week == 1 and rng.random() < 0.5)
        if rng.random() < 0.7:
            await store.check_out_equipment(principal=therapist, patient_id=patient.id,
                                            name=rng.choice(spec["equipment"]),
                                            serial_number=f"EQ-{rng.randint(1000, 9999)}")
    return logins
