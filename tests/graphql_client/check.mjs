// Runs stock GraphQL clients against a live OT Tracker server's /graphql (GRAPHQL.md):
// graphql-request (GraphQLClient) for queries and mutations, graphql-ws (createClient, over npm `ws`,
// since Node 20 has no global WebSocket) for subscriptions. Nothing here speaks the protocol itself.
//
//   OT_SERVER_URL=http://127.0.0.1:8080 OT_PARSE_APP_ID=ot-tracker node tests/graphql_client/check.mjs
//
// Uses the demo logins (data/demo.json: lead, therapist, therapist2). Prints one JSON line per step,
// {"step", "ok", "detail"}, and exits non-zero when any step fails. A step whose prerequisite failed is
// printed as failed ("skipped: ..."); no step runs longer than STEP_TIMEOUT_MS. Everything it makes has a
// unique name, so it can run against a shared server. It never logs a demo user out (a logout ends
// every session of the user, and the demo users may be signed in elsewhere).
import { Buffer } from 'node:buffer';
import { ClientError, GraphQLClient } from 'graphql-request';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const serverBase = (process.env.OT_SERVER_URL || process.argv[2] || '').replace(/\/$/, '');
const appId = process.env.OT_PARSE_APP_ID || process.argv[3] || 'ot-tracker';
if (!serverBase) {
  console.error('usage: OT_SERVER_URL=http://127.0.0.1:8080 [OT_PARSE_APP_ID=ot-tracker] node check.mjs');
  process.exit(2);
}
const HTTP_URL = `${serverBase}/graphql`;
const WS_URL = HTTP_URL.replace(/^http/, 'ws');
const DEMO_PASSWORD = 'demo-password-2026';
const STEP_TIMEOUT_MS = 10000;
const WAIT_MS = 8000; // waiting for an event inside a step: under the step's limit, so the detail says what came
const unique = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const globalId = (className, objectId) => Buffer.from(`${className}:${objectId}`).toString('base64');

// ---- the runner --------------------------------------------------------------------------------------
let failed = 0;
const ctx = {}; // what the steps hand on: tokens, ids, clients
function report(step, ok, detail) {
  if (!ok) failed += 1;
  console.log(JSON.stringify({ step, ok, detail: detail === undefined ? null : detail }));
}
class Failure extends Error {}
function expect(condition, detail) {
  if (!condition) throw new Failure(typeof detail === 'string' ? detail : JSON.stringify(detail));
}
function describe(err) {
  if (err instanceof Failure) return err.message;
  if (err instanceof ClientError) {
    const { status, errors, body } = err.response;
    return `ClientError HTTP ${status}: ${errors ? JSON.stringify(errors) : body}`;
  }
  return String((err && (err.stack || err.message)) || err);
}
// Runs `fn` as step `name` when every ctx key in `needs` is there; its return value is the detail.
async function step(name, needs, fn) {
  const missing = needs.filter((key) => ctx[key] === undefined);
  if (missing.length) {
    report(name, false, `skipped: an earlier step failed (no ${missing.join(', ')})`);
    return;
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(`timed out after ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
  });
  try {
    report(name, true, await Promise.race([fn(), timeout]));
  } catch (err) {
    report(name, false, describe(err));
  } finally {
    clearTimeout(timer);
  }
}

// ---- graphql-request --------------------------------------------------------------------------------
function http(token) {
  const headers = { 'X-Parse-Application-Id': appId };
  if (token) headers['X-Parse-Session-Token'] = token;
  return new GraphQLClient(HTTP_URL, { headers });
}
const run = (client, document, variables) =>
  client.request({ document, variables, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
// The Parse code of an operation that must fail with a GraphQL error (HTTP 200, errors[]).
async function errorCode(client, document, variables) {
  try {
    const data = await run(client, document, variables);
    throw new Failure(`expected an error, got ${JSON.stringify(data)}`);
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    expect(err.response.status === 200, `expected HTTP 200 with errors[], got ${err.response.status} ${err.response.body}`);
    return err.response.errors?.[0]?.extensions?.code;
  }
}

const SIGN_UP = `mutation SignUp($fields: CreateUserFieldsInput) {
  signUp(input: { fields: $fields }) { viewer { sessionToken user { id objectId username role } } } }`;
const LOG_IN = `mutation LogIn($username: String!, $password: String!) {
  logIn(input: { username: $username, password: $password }) { viewer { sessionToken user { id objectId username role } } } }`;
const CREATE_PATIENT = `mutation P($fields: CreatePatientFieldsInput) {
  createPatient(input: { fields: $fields, clientMutationId: "p1" }) {
    clientMutationId patient { id objectId dateOfBirth mobilityStatus primaryTherapist { objectId username } } } }`;
const CREATE_SCORE = `mutation S($fields: CreateMobilityScoreFieldsInput) {
  createMobilityScore(input: { fields: $fields }) {
    mobilityScore { id objectId scoreType scoreValue scoreDate patient { objectId } recordedBy { objectId } } } }`;
const SCORES_PAGE = `query T($pid: ID!, $after: String) {
  mobilityScores(where: { patient: { have: { objectId: { equalTo: $pid } } }, scoreValue: { greaterThan: 45 } },
                 order: [scoreValue_DESC], first: 1, after: $after) {
    count edges { cursor node { objectId scoreValue } } pageInfo { hasNextPage endCursor } } }`;
const UPDATE_PATIENT = `mutation U($input: UpdatePatientInput!) {
  updatePatient(input: $input) { clientMutationId patient { objectId mobilityStatus updatedAt primaryTherapist { objectId } } } }`;
const STATUS_HISTORIES = `query H($pid: ID!) {
  statusHistories(where: { patient: { have: { objectId: { equalTo: $pid } } } }) {
    count edges { node { objectId statusType fromValue toValue changedBy { objectId } } } } }`;
const GET_PATIENT = `query G($id: ID!) { patient(id: $id) { objectId } }`;
const VIEWER = `query { viewer { user { objectId } } }`;
const LOG_OUT = `mutation { logOut(input: { clientMutationId: "bye" }) { clientMutationId ok } }`;
const SUBSCRIBE_SCORES = `subscription Scores($pid: ID!) {
  mobilityScores(where: { patient: { have: { objectId: { equalTo: $pid } } } }) { event objectId node { scoreValue } } }`;

async function createScore(client, patientGid, scoreValue, scoreDate) {
  const data = await run(client, CREATE_SCORE, {
    fields: { patient: { link: patientGid }, scoreType: 'berg', scoreValue, scoreDate },
  });
  return data.createMobilityScore.mobilityScore;
}

// ---- graphql-ws ----------------------------------------------------------------------------------------
// One client (one socket) per user, with one subscription to the patient's scores. What arrives is kept
// in order; `until` waits for a condition on it.
class Subscriber {
  constructor(token) {
    this.events = []; // {event, objectId, node} as delivered
    this.errors = []; // what the subscription's sink.error got
    this.closes = []; // close codes of the socket
    this.completed = false;
    this.waiters = [];
    this.client = createClient({
      url: WS_URL,
      webSocketImpl: WebSocket,
      connectionParams: { 'X-Parse-Application-Id': appId, 'X-Parse-Session-Token': token },
      retryAttempts: 0,
      connectionAckWaitTimeout: STEP_TIMEOUT_MS,
      lazyCloseTimeout: STEP_TIMEOUT_MS, // the socket stays open when a subscription ends, to see how the server closes it
      on: { closed: (event) => { this.closes.push(event && event.code); this.wake(); } },
    });
  }

  wake() {
    for (const waiter of [...this.waiters]) waiter();
  }

  // Resolves when `predicate(this)` holds; fails after WAIT_MS saying what did arrive.
  until(predicate, what) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this)) return;
        this.waiters = this.waiters.filter((w) => w !== check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Failure(`no ${what} within ${WAIT_MS / 1000} s; ${this.summary()}`));
      }, WAIT_MS);
      this.waiters.push(check);
      check();
    });
  }

  summary() {
    return `received ${JSON.stringify(this.events)}, errors ${JSON.stringify(this.errors.map(errorText))}, `
      + `socket closes ${JSON.stringify(this.closes)}`;
  }

  // Subscribes, then runs a query over the same socket: graphql-transport-ws has no "subscribed"
  // acknowledgement, and the server handles a socket's messages in order, so once the query's result is
  // back the subscription is in place (a client's way to know; no sleeping).
  async subscribe(pid) {
    this.unsubscribe = this.client.subscribe({ query: SUBSCRIBE_SCORES, variables: { pid } }, {
      next: (result) => {
        if (result.errors) this.errors.push(result.errors);
        else this.events.push(result.data.mobilityScores);
        this.wake();
      },
      error: (err) => { this.errors.push(err); this.wake(); },
      complete: () => { this.completed = true; this.wake(); },
    });
    const health = await new Promise((resolve, reject) => {
      let value;
      this.client.subscribe({ query: '{ health }' }, {
        next: (result) => { value = result; },
        error: (err) => reject(new Failure(`the query over the socket failed: ${errorText(err)}`)),
        complete: () => resolve(value),
      });
    });
    expect(health && health.data && health.data.health === true, `{ health } over the socket: ${JSON.stringify(health)}`);
    expect(this.errors.length === 0 && !this.completed, `the subscription ended: ${this.summary()}`);
  }

  since(index) {
    return this.events.slice(index);
  }

  dispose() {
    try { this.client.dispose(); } catch { /* already closed */ }
  }
}
function errorText(err) {
  if (Array.isArray(err)) return JSON.stringify(err);
  if (err && typeof err.code === 'number' && 'reason' in err) return `socket closed ${err.code} ${err.reason || ''}`.trim();
  if (err && err.type === 'error' && err.message === undefined) return `socket error (${err.error && err.error.message})`;
  return String((err && err.message) || err);
}

// ---- the steps ---------------------------------------------------------------------------------------
async function main() {
  const newUser = { username: `gql-${unique}`, password: 'gql-password-2026!', email: `gql-${unique}@example.org` };

  await step('signUp a new user', [], async () => {
    const { signUp } = await run(http(), SIGN_UP, { fields: newUser });
    const { sessionToken, user } = signUp.viewer;
    expect(typeof sessionToken === 'string' && sessionToken.length > 0, `sessionToken ${JSON.stringify(sessionToken)}`);
    expect(user.id === globalId('_User', user.objectId), `id ${user.id} is not base64("_User:${user.objectId}")`);
    expect(user.username === newUser.username && user.role === 'contributor', user);
    Object.assign(ctx, { newToken: sessionToken, newUser: user });
    return { id: user.id, objectId: user.objectId, role: user.role };
  });

  await step('logIn as the demo lead, therapist and therapist2', [], async () => {
    const logins = {};
    for (const [key, username, role] of [['lead', 'lead', 'lead'], ['therapist', 'therapist', 'therapist'],
      ['therapist2', 'therapist2', 'therapist']]) {
      const { logIn } = await run(http(), LOG_IN, { username, password: DEMO_PASSWORD });
      const { sessionToken, user } = logIn.viewer;
      expect(user.username === username && user.role === role && user.id === globalId('_User', user.objectId), user);
      expect(typeof sessionToken === 'string' && sessionToken.length > 0, `no sessionToken for ${username}`);
      logins[key] = { token: sessionToken, user };
    }
    Object.assign(ctx, logins);
    return Object.fromEntries(Object.entries(logins).map(([k, v]) => [k, v.user.objectId]));
  });

  await step('createPatient as the lead (CreatePatientFieldsInput variables, primaryTherapist link)', ['lead', 'therapist'], async () => {
    const fields = {
      patientId: `GQL-${unique}`, displayName: 'Graph Client', mobilityStatus: 'moderate_assist',
      dateOfBirth: '1950-03-04T00:00:00.000Z', primaryTherapist: { link: ctx.therapist.user.id },
    };
    const { createPatient } = await run(http(ctx.lead.token), CREATE_PATIENT, { fields });
    const { patient } = createPatient;
    expect(createPatient.clientMutationId === 'p1', `clientMutationId ${JSON.stringify(createPatient.clientMutationId)}`);
    expect(patient.id === globalId('Patient', patient.objectId), `id ${patient.id}`);
    expect(patient.dateOfBirth === '1950-03-04T00:00:00.000Z', `dateOfBirth ${patient.dateOfBirth}`);
    expect(patient.primaryTherapist && patient.primaryTherapist.objectId === ctx.therapist.user.objectId
      && patient.primaryTherapist.username === 'therapist', `primaryTherapist ${JSON.stringify(patient.primaryTherapist)}`);
    ctx.patient = patient;
    return { clientMutationId: createPatient.clientMutationId, patient };
  });

  await step('createMobilityScore x3 as the therapist', ['therapist', 'patient'], async () => {
    const client = http(ctx.therapist.token);
    const made = [];
    for (const [i, value] of [40, 48, 55].entries()) {
      const scoreDate = new Date(Date.UTC(2026, 0, 10 + i, 9, 30)).toISOString();
      const score = await createScore(client, ctx.patient.id, value, scoreDate);
      expect(score.scoreValue === value && score.scoreType === 'berg' && score.scoreDate === scoreDate, score);
      expect(score.patient && score.patient.objectId === ctx.patient.objectId, `patient ${JSON.stringify(score.patient)}`);
      expect(score.recordedBy && score.recordedBy.objectId === ctx.therapist.user.objectId,
        `recordedBy ${JSON.stringify(score.recordedBy)}`);
      made.push(score);
    }
    ctx.scores = made;
    return made.map((s) => ({ objectId: s.objectId, scoreValue: s.scoreValue }));
  });

  await step('mobilityScores where/order/first: count, cursor, pageInfo (GRAPHQL.md §8)', ['therapist', 'scores'], async () => {
    const { mobilityScores } = await run(http(ctx.therapist.token), SCORES_PAGE, { pid: ctx.patient.objectId });
    const { count, edges, pageInfo } = mobilityScores;
    const expectedCursor = Buffer.from('arrayconnection:0').toString('base64');
    expect(count === 2 && edges.length === 1 && edges[0].node.scoreValue === 55, mobilityScores);
    expect(edges[0].cursor === expectedCursor, `cursor ${edges[0].cursor}, expected ${expectedCursor}`);
    expect(pageInfo.hasNextPage === true && pageInfo.endCursor === edges[0].cursor, `pageInfo ${JSON.stringify(pageInfo)}`);
    ctx.endCursor = pageInfo.endCursor;
    return mobilityScores;
  });

  await step('mobilityScores next page (after: endCursor)', ['therapist', 'endCursor'], async () => {
    const { mobilityScores } = await run(http(ctx.therapist.token), SCORES_PAGE,
      { pid: ctx.patient.objectId, after: ctx.endCursor });
    const { count, edges, pageInfo } = mobilityScores;
    expect(count === 2 && edges.length === 1 && edges[0].node.scoreValue === 48, mobilityScores);
    expect(pageInfo.hasNextPage === false, `pageInfo ${JSON.stringify(pageInfo)}`);
    return mobilityScores;
  });

  await step('updatePatient mobilityStatus (therapist), then statusHistories has the change', ['therapist', 'patient'], async () => {
    const client = http(ctx.therapist.token);
    const { updatePatient } = await run(client, UPDATE_PATIENT, {
      input: { id: ctx.patient.id, fields: { mobilityStatus: 'independent' }, clientMutationId: 'u1' },
    });
    expect(updatePatient.clientMutationId === 'u1' && updatePatient.patient.mobilityStatus === 'independent', updatePatient);
    const { statusHistories } = await run(client, STATUS_HISTORIES, { pid: ctx.patient.objectId });
    const rows = statusHistories.edges.map((e) => e.node);
    const row = rows.find((r) => r.statusType === 'mobilityStatus' && r.toValue === 'independent');
    expect(row && row.fromValue === 'moderate_assist', `statusHistories ${JSON.stringify(statusHistories)}`);
    expect(row.changedBy && row.changedBy.objectId === ctx.therapist.user.objectId, `changedBy ${JSON.stringify(row.changedBy)}`);
    return { updatePatient, statusHistory: row };
  });

  // ---- subscriptions (graphql-ws) ----
  await step('subscribe over graphql-ws: the therapist and the new user (a contributor on no care team)',
    ['therapist', 'newToken', 'patient'], async () => {
      const therapist = new Subscriber(ctx.therapist.token);
      const contributor = new Subscriber(ctx.newToken);
      ctx.subscribers = [therapist, contributor];
      await therapist.subscribe(ctx.patient.objectId);
      await contributor.subscribe(ctx.patient.objectId);
      Object.assign(ctx, { therapistSub: therapist, contributorSub: contributor });
      return `both subscribed at ${WS_URL}`;
    });

  await step('subscription: the therapist gets CREATE for a new score, the contributor nothing', ['therapistSub'], async () => {
    const score = await createScore(http(ctx.therapist.token), ctx.patient.id, 30, new Date().toISOString());
    const sub = ctx.therapistSub;
    await sub.until((s) => s.events.some((e) => e.objectId === score.objectId) || s.errors.length, `event for ${score.objectId}`);
    const got = sub.events.find((e) => e.objectId === score.objectId);
    expect(got && got.event === 'CREATE' && got.node && got.node.scoreValue === 30, `therapist: ${sub.summary()}`);
    const seen = ctx.contributorSub.events;
    expect(seen.length === 0 && ctx.contributorSub.errors.length === 0, `contributor: ${ctx.contributorSub.summary()}`);
    ctx.liveScores = [score];
    return { therapist: got, contributor: seen };
  });

  await step('subscription: after a second event that reached the therapist, the contributor still saw none',
    ['liveScores'], async () => {
      const score = await createScore(http(ctx.therapist.token), ctx.patient.id, 33, new Date().toISOString());
      const sub = ctx.therapistSub;
      await sub.until((s) => s.events.some((e) => e.objectId === score.objectId) || s.errors.length, `event for ${score.objectId}`);
      const got = sub.events.find((e) => e.objectId === score.objectId);
      expect(got && got.event === 'CREATE' && got.node && got.node.scoreValue === 33, `therapist: ${sub.summary()}`);
      const seen = ctx.contributorSub.events;
      expect(seen.length === 0 && ctx.contributorSub.errors.length === 0, `contributor: ${ctx.contributorSub.summary()}`);
      ctx.liveScores.push(score);
      ctx.bothCreated = true;
      return { therapist: got, contributor: seen };
    });

  await step('subscription: the lead reassigns the patient to therapist2, the therapist gets LEAVE for its scores',
    ['bothCreated', 'lead', 'therapist2'], async () => {
      const sub = ctx.therapistSub;
      const before = sub.events.length;
      const { updatePatient } = await run(http(ctx.lead.token), UPDATE_PATIENT, {
        input: { id: ctx.patient.id, fields: { primaryTherapist: { link: ctx.therapist2.user.id } } },
      });
      expect(updatePatient.patient.primaryTherapist.objectId === ctx.therapist2.user.objectId, updatePatient);
      // Every score of the patient was in the therapist's view: the three made before it subscribed, the two since.
      const tracked = [...ctx.scores, ...ctx.liveScores].map((s) => s.objectId);
      const left = () => new Set(sub.since(before).filter((e) => e.event === 'LEAVE').map((e) => e.objectId));
      await sub.until((s) => tracked.every((id) => left().has(id)) || s.errors.length, `LEAVE for each of ${JSON.stringify(tracked)}`);
      const leaves = sub.since(before);
      expect(leaves.every((e) => e.event === 'LEAVE' && e.node === null), `expected only LEAVE events with node null: ${JSON.stringify(leaves)}`);
      const code = await errorCode(http(ctx.therapist.token), GET_PATIENT, { id: ctx.patient.id });
      expect(code === 101, `the therapist's patient(id) after the reassignment: code ${code}, expected 101`);
      ctx.leftAt = sub.events.length;
      return { leave: leaves };
    });

  await step('subscription: nothing more for the therapist once access ended (therapist2 gets the next CREATE)',
    ['leftAt'], async () => {
      const next = new Subscriber(ctx.therapist2.token);
      ctx.subscribers.push(next);
      await next.subscribe(ctx.patient.objectId);
      const score = await createScore(http(ctx.lead.token), ctx.patient.id, 36, new Date().toISOString());
      await next.until((s) => s.events.some((e) => e.objectId === score.objectId) || s.errors.length, `event for ${score.objectId}`);
      const got = next.events.find((e) => e.objectId === score.objectId);
      expect(got && got.event === 'CREATE' && got.node && got.node.scoreValue === 36, `therapist2: ${next.summary()}`);
      const after = ctx.therapistSub.since(ctx.leftAt);
      expect(after.length === 0, `the therapist still received ${JSON.stringify(after)}`);
      expect(ctx.contributorSub.events.length === 0, `contributor: ${ctx.contributorSub.summary()}`);
      return { therapist2: got, therapist: after };
    });

  // ---- logOut ----
  await step('logOut as the new user', ['newToken'], async () => {
    const { logOut } = await run(http(ctx.newToken), LOG_OUT);
    expect(logOut.clientMutationId === 'bye' && logOut.ok === true, logOut);
    ctx.loggedOut = true;
    return logOut;
  });

  await step('the logged-out token is refused: HTTP 400 {"code":209,"error":"Invalid session token"}', ['loggedOut'], async () => {
    try {
      const data = await run(http(ctx.newToken), VIEWER);
      throw new Failure(`expected HTTP 400, got data ${JSON.stringify(data)}`);
    } catch (err) {
      if (!(err instanceof ClientError)) throw err;
      const { status, body } = err.response;
      let parsed;
      try { parsed = JSON.parse(body); } catch { parsed = body; }
      expect(status === 400 && parsed && parsed.code === 209 && parsed.error === 'Invalid session token'
        && Object.keys(parsed).length === 2, `HTTP ${status} ${body}`);
      return { status, body: parsed };
    }
  });

  await step("logOut ends the new user's subscription (error 209, then close 4403)", ['loggedOut', 'contributorSub'], async () => {
    const sub = ctx.contributorSub;
    await sub.until((s) => s.closes.includes(4403), 'close 4403');
    const codes = sub.errors.flatMap((e) => (Array.isArray(e) ? e.map((g) => g.extensions && g.extensions.code) : []));
    expect(codes.includes(209), `expected an error with code 209 before the close: ${sub.summary()}`);
    expect(sub.events.length === 0, `contributor: ${sub.summary()}`);
    return { errors: sub.errors.filter(Array.isArray), closes: sub.closes };
  });
}

main().then(() => {
  for (const sub of ctx.subscribers || []) sub.dispose();
  process.exit(failed ? 1 : 0);
}, (err) => {
  report('unexpected error', false, describe(err));
  for (const sub of ctx.subscribers || []) sub.dispose();
  process.exit(1);
});
