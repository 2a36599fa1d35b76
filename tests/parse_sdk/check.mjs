// Runs the official Parse JS SDK (npm `parse`, 8.x) against a live OT Tracker server.
//
//   node tests/parse_sdk/check.mjs http://127.0.0.1:8080 ot-tracker
//
// Uses the demo logins (data/demo.json). Prints one line per check and exits non-zero when any
// check fails. Every object it makes has a unique patientId, so it can run against a shared server.
import Parse from 'parse/node';

const [serverBase, appId = 'ot-tracker'] = process.argv.slice(2);
if (!serverBase) {
  console.error('usage: node check.mjs <server URL, e.g. http://127.0.0.1:8080> [application id]');
  process.exit(2);
}
const PASSWORD = 'demo-password-2026';
const EVENT_TIMEOUT_MS = 10000;
const QUIET_MS = 1500;

Parse.initialize(appId);
// One user at a time in this script, so the SDK may keep a current user (for logIn/logOut).
Parse.User.enableUnsafeCurrentUser();
Parse.serverURL = serverBase.replace(/\/$/, '') + '/parse';
const wsURL = Parse.serverURL.replace(/^http/, 'ws');

const failures = [];
let passed = 0;
function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failures.push(name);
    console.log(`FAIL ${name}${detail ? ': ' + detail : ''}`);
  }
}
async function expectError(name, code, fn) {
  try {
    const value = await fn();
    check(name, false, `expected error ${code}, got ${JSON.stringify(value)}`);
  } catch (err) {
    check(name, err && err.code === code, `expected code ${code}, got ${err && err.code} ${err && err.message}`);
  }
}
const unique = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

// Waits for the first event of `op` on a subscription (resolves with the object, or null on timeout).
function nextEvent(subscription, op, timeout = EVENT_TIMEOUT_MS) {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => { done = true; resolve(null); }, timeout);
    subscription.on(op, (object) => {
      if (!done) { done = true; clearTimeout(timer); resolve(object); }
    });
  });
}

async function logIn(username) {
  const user = await Parse.User.logIn(username, PASSWORD);
  return { user, token: user.getSessionToken() };
}

async function main() {
  // --- accounts: sign up, log in, log out; the logged-out token is refused with 209 ----------------
  const username = `sdk-${unique}`;
  const fresh = new Parse.User();
  fresh.set({ username, password: 'sdk-password-2026!', email: `${username}@example.org` });
  await fresh.signUp();
  check('signUp returns a session token', typeof fresh.getSessionToken() === 'string' && fresh.getSessionToken().startsWith('r:'));
  check('signUp createdAt is a Date', fresh.createdAt instanceof Date && !Number.isNaN(fresh.createdAt.getTime()));
  await Parse.User.logOut();
  const loggedIn = await Parse.User.logIn(username, 'sdk-password-2026!');
  const freshToken = loggedIn.getSessionToken();
  check('logIn returns the user', loggedIn.get('username') === username && loggedIn.get('role') === 'contributor');
  const me = await Parse.User.me(freshToken);
  check('me (users/me) finds the user', me.id === loggedIn.id);
  check('logIn made a current user', Parse.User.current() && Parse.User.current().id === loggedIn.id);
  await Parse.User.logOut();
  check('logOut clears the current user', Parse.User.current() === null);
  await expectError('the logged-out token is refused with 209', 209, () => Parse.User.me(freshToken));
  await expectError('a wrong password is refused with 101', 101, () => Parse.User.logIn(username, 'not-the-password'));

  // --- as a lead: a patient pointing at a therapist, then scores, notes and equipment (saveAll) ----
  const lead = await logIn('lead');
  const asLead = { sessionToken: lead.token };
  const therapist = await logIn('therapist');
  const therapist2 = await logIn('therapist2');
  // From here every call names its session explicitly. (No logOut: the store's logout ends every
  // session of the user, and these demo users may be signed in elsewhere.)

  const therapistUser = await new Parse.Query(Parse.User).equalTo('username', 'therapist').first(asLead);
  check('query users by username', therapistUser && therapistUser.id === therapist.user.id);

  const Patient = Parse.Object.extend('Patient');
  const patient = new Patient();
  patient.set({
    patientId: `SDK-${unique}`, displayName: 'Sdk Example', primaryTherapist: therapistUser,
    mobilityStatus: 'moderate_assist', dateOfBirth: new Date('1950-05-06T00:00:00.000Z'),
  });
  await patient.save(null, asLead);
  check('create Patient', typeof patient.id === 'string' && patient.createdAt instanceof Date);

  const scoreValues = [40, 48, 55];
  const records = scoreValues.map((value, i) => {
    const score = new Parse.Object('MobilityScore');
    score.set({ patient, scoreType: 'berg', scoreValue: value, scoreDate: new Date(Date.now() - (3 - i) * 86400000) });
    return score;
  });
  const tug = new Parse.Object('MobilityScore');
  tug.set({ patient, scoreType: 'tug', scoreValue: 14.5, scoreDate: new Date(Date.now() - 3600000) });
  records.push(tug);
  const note = new Parse.Object('SessionNote');
  note.set({ patient, sessionDate: new Date(), sessionType: 'assessment', noteText: 'Initial assessment.', followUpNeeded: true });
  const equipment = new Parse.Object('EquipmentLog');
  equipment.set({ patient, equipmentName: 'Wheeled walker', serialNumber: `WW-${unique}`, status: 'checked_out' });
  records.push(note, equipment);
  await Parse.Object.saveAll(records, asLead);
  check('saveAll (batch) saves scores, a note and an equipment log', records.every((r) => typeof r.id === 'string'));

  await expectError('an out-of-range score is refused with 111', 111, async () => {
    const bad = new Parse.Object('MobilityScore');
    bad.set({ patient, scoreType: 'berg', scoreValue: 99, scoreDate: new Date() });
    return bad.save(null, asLead);
  });
  await expectError('StatusHistory cannot be written directly (119)', 119, async () => {
    const history = new Parse.Object('StatusHistory');
    history.set({ patient, statusType: 'mobilityStatus', toValue: 'independent' });
    return history.save(null, asLead);
  });

  // --- queries --------------------------------------------------------------------------------------
  const withTherapist = await new Parse.Query('Patient').equalTo('objectId', patient.id).include('primaryTherapist').first(asLead);
  const included = withTherapist && withTherapist.get('primaryTherapist');
  check("include('primaryTherapist') inlines the user", included && included.id === therapistUser.id && included.get('username') === 'therapist');
  check('dates come back as Dates', withTherapist && withTherapist.get('dateOfBirth') instanceof Date
    && withTherapist.get('dateOfBirth').toISOString() === '1950-05-06T00:00:00.000Z');

  const scores = () => new Parse.Query('MobilityScore').equalTo('patient', patient);
  const greater = await scores().greaterThan('scoreValue', 45).containedIn('scoreType', ['berg']).descending('scoreDate').find(asLead);
  check('greaterThan + containedIn + descending', greater.length === 2 && greater[0].get('scoreValue') === 55 && greater[1].get('scoreValue') === 48,
    JSON.stringify(greater.map((s) => s.get('scoreValue'))));
  const limited = await scores().descending('scoreDate').limit(2).find(asLead);
  check('limit', limited.length === 2);
  const total = await scores().count(asLead);
  check('count', total === 4, `count ${total}`);
  const since = await scores().greaterThanOrEqualTo('scoreDate', new Date(Date.now() - 2.5 * 86400000)).lessThan('scoreValue', 100).find(asLead);
  check('date comparisons', since.length === 3, `found ${since.length}`);
  const byPointer = await new Parse.Query('Patient').equalTo('primaryTherapist', therapistUser).equalTo('patientId', `SDK-${unique}`).find(asLead);
  check('pointer equality', byPointer.length === 1 && byPointer[0].id === patient.id);

  // --- a therapist not on the team: 101 for get, nothing for find, a count of 0 ---------------------
  const asOutsider = { sessionToken: therapist2.token };
  await expectError('a therapist not on the team gets 101 for get', 101, () => new Parse.Query('Patient').get(patient.id, asOutsider));
  await expectError('... and 101 for a score of that patient', 101, () => new Parse.Query('MobilityScore').get(records[0].id, asOutsider));
  const outsiderFind = await scores().find(asOutsider);
  check('... zero results for find', outsiderFind.length === 0, `found ${outsiderFind.length}`);
  const outsiderCount = await scores().count(asOutsider);
  check('... a count of 0', outsiderCount === 0, `count ${outsiderCount}`);
  const owned = await new Parse.Query('Patient').get(patient.id, { sessionToken: therapist.token });
  check('the primary therapist reads the patient', owned.id === patient.id);

  // --- a mobilityStatus change through save() writes a StatusHistory row ----------------------------
  patient.set('mobilityStatus', 'minimal_assist');
  await patient.save(null, asLead);
  const history = await new Parse.Query('StatusHistory').equalTo('patient', patient).equalTo('toValue', 'minimal_assist').find(asLead);
  check('a mobilityStatus change through save() makes a StatusHistory row', history.length === 1
    && history[0].get('fromValue') === 'moderate_assist' && history[0].get('statusType') === 'mobilityStatus');

  // --- live queries ---------------------------------------------------------------------------------
  const watcher = new Parse.LiveQueryClient({ applicationId: appId, serverURL: wsURL, sessionToken: therapist.token });
  watcher.open();
  const subscription = watcher.subscribe(scores(), therapist.token);
  await subscription.subscribePromise;
  const outsider = new Parse.LiveQueryClient({ applicationId: appId, serverURL: wsURL, sessionToken: therapist2.token });
  outsider.open();
  const outsiderSub = outsider.subscribe(scores(), therapist2.token);
  await outsiderSub.subscribePromise;
  const outsiderEvents = [];
  for (const op of ['create', 'enter', 'update', 'leave', 'delete']) {
    outsiderSub.on(op, (object) => outsiderEvents.push(`${op}:${object.id}`));
  }

  const created = nextEvent(subscription, 'create');
  const live = new Parse.Object('MobilityScore');
  live.set({ patient, scoreType: 'barthel', scoreValue: 65, scoreDate: new Date() });
  await live.save(null, asLead);
  const createdObject = await created;
  check('live query: create for a new score', createdObject && createdObject.id === live.id && createdObject.get('scoreValue') === 65,
    createdObject ? createdObject.id : 'no event');

  // The subscriber loses access: the lead reassigns the patient to a therapist made for the purpose.
  const other = new Parse.User();
  other.set({ username: `sdk-ot-${unique}`, password: 'sdk-password-2026!', email: `sdk-ot-${unique}@example.org`, role: 'therapist' });
  await other.save(null, asLead);
  check('a lead creates a therapist account', typeof other.id === 'string');
  const left = nextEvent(subscription, 'leave');
  patient.set('primaryTherapist', other);
  await patient.save(null, asLead);
  const leftObject = await left;
  check('live query: leave when the subscriber loses access', leftObject !== null && typeof leftObject.id === 'string');
  await expectError('... and the patient is gone for it (101)', 101, () => new Parse.Query('Patient').get(patient.id, { sessionToken: therapist.token }));

  const afterLoss = [];
  subscription.on('create', (object) => afterLoss.push(object.id));
  const another = new Parse.Object('MobilityScore');
  another.set({ patient, scoreType: 'barthel', scoreValue: 70, scoreDate: new Date() });
  await another.save(null, asLead);
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  check('live query: nothing after access ended', afterLoss.length === 0, JSON.stringify(afterLoss));
  check('live query: an unauthorized subscriber receives nothing', outsiderEvents.length === 0, JSON.stringify(outsiderEvents));

  await watcher.close();
  await outsider.close();
}

main().then(() => {
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}, (err) => {
  console.log(`FAIL unexpected error: ${err && err.code !== undefined ? `code ${err.code}: ` : ''}${err && (err.stack || err.message || err)}`);
  console.log(`${passed} passed, ${failures.length + 1} failed`);
  process.exit(1);
});
