"""One patient's records as a FHIR R4 `Bundle` of type `collection` (the `$everything` export).

Plain dicts in, JSON-ready dicts out: the store has already decided what the reader may see
(dashboard/store/exports.py), so this only maps. What it maps to:

    Patient            identifier (the hospital's patientId), name, birthDate: absent for a viewer
    Observation        one per score: LOINC where MEASURES.md gives one, our own code system
                       otherwise; a score marked in error has status `entered-in-error`
    Observation        the current mobility status
    DocumentReference  one per session note; an addendum `relatesTo` (appends) the note it amends
    Device + DeviceUseStatement  one pair per equipment log
    Practitioner       each account the records name (its username only)
    Provenance         who recorded each record (and who marked a score in error)

FHIR ids allow letters, digits, '-' and '.', and our object ids (URL-safe base64) may hold '_':
`fhir_id` swaps it for '.', which an object id never holds, so the mapping stays one to one.
"""
from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from dashboard.catalogue import Catalogue
from dashboard.record_types import EquipmentRecord, NoteRecord, ScoreRecord
from dashboard.serialize import iso
from dashboard.store.exports import PatientEverything

MEDIA_TYPE = "application/fhir+json"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# The project's own code systems, for what has no standard code (measures without a LOINC code,
# the mobility status, session types). A canonical base of our own: nothing here is a LOINC code.
CANONICAL = "https://ot-tracker.example.org/fhir"
MEASURE_SYSTEM = f"{CANONICAL}/CodeSystem/measure"
OBSERVATION_SYSTEM = f"{CANONICAL}/CodeSystem/observation"
MOBILITY_SYSTEM = f"{CANONICAL}/CodeSystem/mobility-status"
SESSION_TYPE_SYSTEM = f"{CANONICAL}/CodeSystem/session-type"
MOBILITY_CODE = "mobility-status"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Units that are UCUM codes as written; any other unit (score, category, level) is a count, which
# UCUM writes as an annotation: {score}.
UCUM_UNITS = frozenset({"s", "min", "h", "m", "cm", "km", "kg", "g", "%"})
# An equipment log's status as DeviceUseStatement.status (R4: active | completed | entered-in-error |
# intended | stopped | on-hold).
DEVICE_USE_STATUS = {"checked_out": "active", "returned": "completed", "lost": "stopped",
                     "needs_repair": "on-hold"}


def fhir_id(object_id: str) -> str:
    return object_id.replace("_", ".")


def _ref(resource_type: str, object_id: str, display: str | None = None) -> dict[str, str]:
    ref = {"reference": f"{resource_type}/{fhir_id(object_id)}"}
    if display:
        ref["display"] = display
    return ref


def _date(value: datetime) -> str:
    return value.date().isoformat()


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _quantity(value: float, unit: str) -> dict[str, Any]:
    code = unit if unit in UCUM_UNITS else "{" + unit + "}"
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": code}


class BundleBuilder:
    """Builds one bundle; `build()` answers the JSON-ready dict."""

    def __init__(self, everything: PatientEverything, catalogue: Catalogue, *, base_url: str, now: datetime):
        self.e = everything
        self.catalogue = catalogue
        self.base = base_url.rstrip("/") + "/fhir"
        self.now = now
        self.entries: list[dict[str, Any]] = []
        self.subject = _ref("Patient", everything.patient.id)

    def add(self, resource: dict[str, Any]) -> None:
        self.entries.append({"fullUrl": f"{self.base}/{resource['resourceType']}/{resource['id']}",
                             "resource": resource})

    def username(self, user_id: str | None) -> str | None:
        user = self.e.users.get(user_id or "")
        return user.username if user else None

    def practitioner(self, user_id: str | None) -> dict[str, str] | None:
        """A reference to an account the reader may see (its Practitioner is in the bundle); None
        for one it may not (a viewer sees no staff): the bundle names nobody it does not hold."""
        if not user_id or user_id not in self.e.users:
            return None
        return _ref("Practitioner", user_id, self.username(user_id))

    def provenance(self, id_: str, targets: Iterable[dict[str, str]], recorded: datetime,
                   who: str | None, *, activity: str | None = None) -> None:
        if self.practitioner(who) is None:
            return  # no one the reader may see to name as its author
        resource: dict[str, Any] = {
            "resourceType": "Provenance", "id": id_, "target": list(targets), "recorded": iso(recorded),
            "agent": [{"type": {"coding": [{"system": PARTICIPANT, "code": "author", "display": "Author"}]},
                       "who": self.practitioner(who)}]}
        if activity:
            resource["activity"] = {"coding": [{"system": DATA_OPERATION, "code": activity}]}
        self.add(resource)

    # -- resources ------------------------------------------------------------------------------
    def patient(self) -> None:
        p = self.e.patient
        resource: dict[str, Any] = {"resourceType": "Patient", "id": fhir_id(p.id), "active": not p.archived,
                                    "name": [{"text": p.display_name}]}
        if p.patient_id:  # None for a viewer
            resource["identifier"] = [{"use": "usual", "type": {"coding": [
                {"system": IDENTIFIER_TYPE, "code": "MR", "display": "Medical record number"}]},
                "value": p.patient_id}]
        if p.date_of_birth is not None:
            resource["birthDate"] = _date(p.date_of_birth)
        self.add(resource)

    def score(self, s: ScoreRecord) -> None:
        measure = self.catalogue.measures.get(s.score_type)
        name = measure.name if measure else s.score_type
        coding = ({"system": LOINC, "code": measure.loinc} if measure and measure.loinc
                  else {"system": MEASURE_SYSTEM, "code": s.score_type, "display": name})
        resource: dict[str, Any] = {
            "resourceType": "Observation", "id": fhir_id(s.id),
            "status": "entered-in-error" if s.entered_in_error else "final",
            "code": {"coding": [coding], "text": name}, "subject": self.subject,
            "effectiveDateTime": iso(s.score_date), "issued": iso(s.created_at),
            "valueQuantity": _quantity(s.score_value, measure.unit if measure else "score")}
        performer = self.practitioner(s.recorded_by_id)
        if performer:
            resource["performer"] = [performer]
        notes = [text for text in (s.notes, s.error_reason) if text]  # None for a viewer
        if notes:
            resource["note"] = [{"text": text} for text in notes]
        self.add(resource)
        target = [_ref("Observation", s.id)]
        self.provenance(fhir_id(s.id), target, s.created_at, s.recorded_by_id)
        if s.entered_in_error:
            self.provenance(fhir_id(s.id) + "-error", target, s.updated_at, s.error_marked_by_id,
                            activity="UPDATE")

    def mobility_status(self) -> None:
        p = self.e.patient
        changes = [h for h in self.e.history if h.status_type == "mobilityStatus"]
        last = changes[-1] if changes else None
        label = self.catalogue.vocabulary.get("mobilityStatus", {}).get(p.mobility_status)
        id_ = fhir_id(p.id) + "-" + MOBILITY_CODE
        coding = {"system": MOBILITY_SYSTEM, "code": p.mobility_status}
        if label:
            coding["display"] = label.label
        self.add({
            "resourceType": "Observation", "id": id_, "status": "final",
            "code": {"coding": [{"system": OBSERVATION_SYSTEM, "code": MOBILITY_CODE, "display": "Mobility status"}],
                     "text": "Mobility status"},
            "subject": self.subject, "effectiveDateTime": iso(last.created_at if last else p.created_at),
            "valueCodeableConcept": {"coding": [coding], "text": label.label if label else p.mobility_status}})
        if last is not None:
            self.provenance(id_, [_ref("Observation", id_)], last.created_at, last.changed_by_id)

    def note(self, n: NoteRecord) -> None:
        label = self.catalogue.vocabulary.get("sessionType", {}).get(n.session_type)
        text = label.label if label else n.session_type
        attachment: dict[str, Any] = {"contentType": "text/plain; charset=utf-8", "creation": iso(n.created_at)}
        if n.note_text is not None:  # a viewer never gets here (no notes), and never the text
            attachment["data"] = base64.b64encode(n.note_text.encode()).decode("ascii")
        resource: dict[str, Any] = {
            "resourceType": "DocumentReference", "id": fhir_id(n.id), "status": "current", "docStatus": "final",
            "type": {"coding": [{"system": SESSION_TYPE_SYSTEM, "code": n.session_type, "display": text}],
                     "text": text},
            "subject": self.subject, "date": iso(n.created_at),
            "context": {"period": {"start": iso(n.session_date)}},
            "content": [{"attachment": attachment}]}
        author = self.practitioner(n.author_id)
        if author:
            resource["author"] = [author]
        if n.amends_id:
            resource["relatesTo"] = [{"code": "appends", "target": _ref("DocumentReference", n.amends_id)}]
        self.add(resource)
        self.provenance(fhir_id(n.id), [_ref("DocumentReference", n.id)], n.created_at, n.author_id)

    def equipment(self, log: EquipmentRecord) -> None:
        device: dict[str, Any] = {"resourceType": "Device", "id": fhir_id(log.id), "patient": self.subject,
                                  "deviceName": [{"name": log.equipment_name, "type": "user-friendly-name"}]}
        if log.serial_number:
            device["serialNumber"] = log.serial_number
        self.add(device)
        use: dict[str, Any] = {"resourceType": "DeviceUseStatement", "id": fhir_id(log.id),
                               "status": DEVICE_USE_STATUS.get(log.status, "active"),
                               "subject": self.subject, "device": _ref("Device", log.id),
                               "recordedOn": iso(log.created_at)}
        period = {k: iso(v) for k, v in (("start", log.checked_out_at), ("end", log.returned_at)) if v}
        if period:
            use["timingPeriod"] = period
        source = self.practitioner(log.logged_by_id)
        if source:
            use["source"] = source
        self.add(use)
        self.provenance(fhir_id(log.id), [_ref("Device", log.id), _ref("DeviceUseStatement", log.id)],
                        log.created_at, log.logged_by_id)

    def practitioners(self) -> None:
        for user in sorted(self.e.users.values(), key=lambda u: u.id):
            self.add({"resourceType": "Practitioner", "id": fhir_id(user.id), "name": [{"text": user.username}]})

    def build(self) -> dict[str, Any]:
        self.patient()
        self.mobility_status()
        for score in self.e.scores:
            self.score(score)
        for note in self.e.notes:
            self.note(note)
        for log in self.e.equipment:
            self.equipment(log)
        self.practitioners()
        # No `total`: FHIR gives it to search and history bundles only (bdl-1).
        return {"resourceType": "Bundle", "type": "collection", "timestamp": iso(self.now),
                "entry": self.entries}


def patient_bundle(everything: PatientEverything, catalogue: Catalogue, *, base_url: str,
                   now: datetime) -> dict[str, Any]:
    """The patient's `$everything` as a FHIR R4 Bundle (type collection), ready for JSON."""
    return BundleBuilder(everything, catalogue, base_url=base_url, now=now).build()
