"""The store: the only door to the data. Every call takes the acting principal (ACCESS.md).

`Store` is composed, not inherited: a `StoreCore` (database, access index, hub, change feed,
principal checks, the write transaction, validation, audit) handed to each part, and each public
verb one line to the part that holds it:

    reads       find, get, count, get_many                      read.py
    writes      create, update, delete and the record verbs      write.py
    accounts    sign-up, sign-in, sessions, users                accounts.py
    care_teams  add, remove, list members                        care_team.py
    caseloads   caseload, ward board, equipment board            caseload.py
    audit       audit pages, access report, CSV, patient activity audit.py
    imports     bulk imports                                     imports.py
    exports     one patient's everything (the FHIR export)       exports.py
    patients    discharge, the discharged patients               patients.py
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dashboard.access import AccessIndex
from dashboard.catalogue import Catalogue
from dashboard.changes import ChangeFeed
from dashboard.config import Settings
from dashboard.db import Database
from dashboard.hub import Hub
from dashboard.models import utcnow
from dashboard.passwords import PasswordHasher
from dashboard.presence import PresenceBoard
from dashboard.rate_limit import SignInLimiter
from dashboard.store.accounts import Accounts, SignedIn
from dashboard.store.audit import AuditLog
from dashboard.store.care_team import CareTeams, TeamMember
from dashboard.store.caseload import BoardItem, CaseloadRow, Caseloads, LatestScore, WardRow, ward_order
from dashboard.store.core import StoreCore
from dashboard.store.exports import Exports, PatientEverything
from dashboard.store.imports import Imports
from dashboard.store.patients import Discharge, DischargedRow, Patients
from dashboard.store.read import Reads
from dashboard.store.rules import Permissions
from dashboard.store.write import Writes


class Store:
    def __init__(self, db: Database, *, settings: Settings, catalogue: Catalogue | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.core = core = StoreCore(db, settings=settings, catalogue=catalogue, clock=clock)
        self.reads = reads = Reads(core)
        self.accounts = accounts = Accounts(core, reads)
        self.writes = writes = Writes(core, reads, accounts)
        self.care_teams = care_teams = CareTeams(core, reads)
        self.caseloads = caseloads = Caseloads(core, reads)
        self.imports = imports = Imports(core, writes)
        self.exports = exports = Exports(core, reads)
        self.audit = audit = AuditLog(core)
        self.patients = patients = Patients(core, reads, writes)

        self.start, self.stop, self.flush_audit, self.permissions = (
            core.start, core.stop, core.flush_audit, core.permissions)
        self.find, self.get, self.count, self.get_many = reads.find, reads.get, reads.count, reads.get_many
        self.create, self.update, self.delete = writes.create, writes.update, writes.delete
        self.create_for_new_patient = writes.create_for_new_patient
        self.record_score, self.add_note, self.check_out_equipment = (
            writes.record_score, writes.add_note, writes.check_out_equipment)
        self.change_status, self.return_equipment, self.assign_therapist = (
            writes.change_status, writes.return_equipment, writes.assign_therapist)
        self.mark_score_in_error, self.clear_follow_up = writes.mark_score_in_error, writes.clear_follow_up
        self.sign_up, self.log_in, self.log_out = accounts.sign_up, accounts.log_in, accounts.log_out
        self.resolve_session, self.touch_session, self.note_activity, self.session_ended_because = (
            accounts.resolve_session, accounts.touch_session, accounts.note_activity, accounts.session_ended_because)
        self.create_user, self.bootstrap_lead, self.new_account_problems = (
            accounts.create_user, accounts.bootstrap_lead, accounts.new_account_problems)
        self.get_user, self.list_users, self.update_user = accounts.get_user, accounts.list_users, accounts.update_user
        self.unlock_user, self.lock_state = accounts.unlock_user, accounts.lock_state
        self.sign_out_user = accounts.sign_out_user
        self.add_care_team_member, self.remove_care_team_member, self.care_team = (
            care_teams.add_care_team_member, care_teams.remove_care_team_member, care_teams.care_team)
        self.caseload, self.equipment_board = caseloads.caseload, caseloads.equipment_board
        self.ward_board = caseloads.ward_board
        self.audit_trail, self.audit_page, self.audit_csv = audit.audit_trail, audit.audit_page, audit.audit_csv
        self.access_report, self.patient_activity = audit.access_report, audit.patient_activity
        self.import_patients, self.import_scores, self.import_notes = (
            imports.import_patients, imports.import_scores, imports.import_notes)
        self.patient_everything = exports.patient_everything
        self.discharge_patient, self.discharged_patients, self.discharge_of = (
            patients.discharge_patient, patients.discharged_patients, patients.discharge_of)

    # What the channels read beside the verbs; tests move the clock and swap the limiter.
    @property
    def db(self) -> Database:
        return self.core.db

    @property
    def access(self) -> AccessIndex:
        return self.core.access

    @property
    def hub(self) -> Hub:
        return self.core.hub

    @property
    def feed(self) -> ChangeFeed:
        return self.core.feed

    @property
    def presence(self) -> PresenceBoard:
        """Viewers of patient pages on the other instances (dashboard/presence.py)."""
        return self.core.presence

    @property
    def catalogue(self) -> Catalogue:
        return self.core.catalogue

    @property
    def hasher(self) -> PasswordHasher:
        return self.core.hasher

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self.core.settings = value

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.core.clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self.core.clock = value

    @property
    def sign_in_limiter(self) -> SignInLimiter:
        return self.core.sign_in_limiter

    @sign_in_limiter.setter
    def sign_in_limiter(self, value: SignInLimiter) -> None:
        self.core.sign_in_limiter = value


__all__ = ["Store", "SignedIn", "CaseloadRow", "WardRow", "ward_order", "LatestScore", "BoardItem", "Permissions", "TeamMember",
           "PatientEverything", "DischargedRow", "Discharge"]
