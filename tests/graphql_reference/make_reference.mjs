// Generates parse-9.10.0-schema.json: the GraphQL schema (full introspection) that the real
// Parse Server 9.10.0 builds for OT Tracker's six classes.
//
//   npm ci --prefix tests/graphql_reference && node tests/graphql_reference/make_reference.mjs
//   (then node tests/graphql_reference/derive_names.mjs for parse-9.10.0-names.json)
//
// Needs PostgreSQL on 127.0.0.1:5432, user postgres, trust auth (PGHOST/PGPORT/PGUSER override).
// Creates (dropping first) the database parse_graphql_reference, runs Parse Server in-process with
// express on a free port, creates the classes through the REST schema API with the master key,
// introspects /graphql with the master key, writes the sorted result, stops, drops the database.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Parse's default logger writes to ./logs as soon as the module loads: turn file logging off first
// (dynamic imports below, so this runs before parse-server is evaluated).
process.env.PARSE_SERVER_LOGS_FOLDER = 'null';

const { default: express } = await import('express');
const { default: pg } = await import('pg');
const { getIntrospectionQuery } = await import('graphql');
const { ParseServer, ParseGraphQLServer } = await import('parse-server');

const HERE = dirname(fileURLToPath(import.meta.url));
const PARSE_VERSION = JSON.parse(
  readFileSync(createRequire(import.meta.url).resolve('parse-server/package.json'), 'utf8')
).version;
if (PARSE_VERSION !== '9.10.0') throw new Error(`parse-server ${PARSE_VERSION} installed, 9.10.0 expected`);
const OUT = join(HERE, 'parse-9.10.0-schema.json');
const PG = {
  host: process.env.PGHOST || '127.0.0.1',
  port: Number(process.env.PGPORT || 5432),
  user: process.env.PGUSER || 'postgres',
};
const DB = 'parse_graphql_reference';
const APP_ID = 'ot-graphql-reference';
const MASTER_KEY = 'reference-master-key';

// Exactly dashboard/schema.py CLASSES (Parse field name, type, required, pointer target).
// objectId/createdAt/updatedAt/ACL are Parse's own. _User's username/email/password are Parse
// built-ins: the schema API refuses to redefine them, so only role and active are added there.
const CLASSES = {
  _User: {
    username: { type: 'String', required: true },
    email: { type: 'String', required: true },
    password: { type: 'String', required: true },
    role: { type: 'String', required: true },
    active: { type: 'Boolean' },
  },
  Patient: {
    patientId: { type: 'String', required: true },
    displayName: { type: 'String', required: true },
    dateOfBirth: { type: 'Date' },
    primaryTherapist: { type: 'Pointer', targetClass: '_User', required: true },
    mobilityStatus: { type: 'String', required: true },
    archived: { type: 'Boolean' },
  },
  MobilityScore: {
    patient: { type: 'Pointer', targetClass: 'Patient', required: true },
    scoreDate: { type: 'Date', required: true },
    scoreType: { type: 'String', required: true },
    scoreValue: { type: 'Number', required: true },
    notes: { type: 'String' },
    recordedBy: { type: 'Pointer', targetClass: '_User', required: true },
    enteredInError: { type: 'Boolean' },
    errorReason: { type: 'String' },
  },
  EquipmentLog: {
    patient: { type: 'Pointer', targetClass: 'Patient', required: true },
    equipmentName: { type: 'String', required: true },
    serialNumber: { type: 'String' },
    status: { type: 'String', required: true },
    checkedOutAt: { type: 'Date' },
    returnedAt: { type: 'Date' },
    loggedBy: { type: 'Pointer', targetClass: '_User', required: true },
  },
  SessionNote: {
    patient: { type: 'Pointer', targetClass: 'Patient', required: true },
    sessionDate: { type: 'Date', required: true },
    sessionType: { type: 'String', required: true },
    noteText: { type: 'String', required: true },
    followUpNeeded: { type: 'Boolean', required: true },
    author: { type: 'Pointer', targetClass: '_User', required: true },
    amends: { type: 'Pointer', targetClass: 'SessionNote' },
  },
  StatusHistory: {
    patient: { type: 'Pointer', targetClass: 'Patient', required: true },
    statusType: { type: 'String', required: true },
    fromValue: { type: 'String' },
    toValue: { type: 'String', required: true },
    changedBy: { type: 'Pointer', targetClass: '_User', required: true },
    changeReason: { type: 'String' },
  },
};
const GRAPHQL_NAMES = ['User', 'Patient', 'MobilityScore', 'EquipmentLog', 'SessionNote', 'StatusHistory'];

const t0 = Date.now();
const log = msg => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

async function admin(sql) {
  const client = new pg.Client({ ...PG, database: 'postgres' });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Keys are sorted everywhere; lists of named things (types, fields, args, inputFields, enumValues,
// interfaces, possibleTypes, directives) are sorted by name; directive locations alphabetically.
function canonical(value) {
  if (Array.isArray(value)) {
    const items = value.map(canonical);
    if (items.every(i => i && typeof i === 'object' && typeof i.name === 'string')) {
      items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } else if (items.every(i => typeof i === 'string')) {
      items.sort();
    }
    return items;
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map(k => [k, canonical(value[k])])
    );
  }
  return value;
}

let httpServer;
let parseServer;
let dbCreated = false;
try {
  log(`creating database ${DB} on ${PG.host}:${PG.port}`);
  await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${DB}`);
  dbCreated = true;

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = express();
  parseServer = new ParseServer({
    databaseURI: `postgres://${PG.user}@${PG.host}:${PG.port}/${DB}`,
    appId: APP_ID,
    masterKey: MASTER_KEY,
    maintenanceKey: 'reference-maintenance-key',
    masterKeyIps: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
    serverURL: `${base}/parse`,
    logsFolder: null,
    silent: true,
  });
  await parseServer.start();
  app.use('/parse', parseServer.app);
  new ParseGraphQLServer(parseServer, { graphQLPath: '/graphql' }).applyGraphQL(app);
  await new Promise((resolve, reject) => {
    httpServer = app.listen(port, '127.0.0.1', err => (err ? reject(err) : resolve()));
  });
  log(`Parse Server ${PARSE_VERSION} on ${base} (/parse, /graphql)`);

  const headers = {
    'Content-Type': 'application/json',
    'X-Parse-Application-Id': APP_ID,
    'X-Parse-Master-Key': MASTER_KEY,
  };
  async function rest(method, path, body) {
    const res = await fetch(`${base}/parse${path}`, { method, headers, body: body && JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  }

  for (const [className, fields] of Object.entries(CLASSES)) {
    const existing = await rest('GET', `/schemas/${className}`);
    const have = existing.status === 200 ? existing.body.fields : {};
    const add = Object.fromEntries(Object.entries(fields).filter(([name]) => !(name in have)));
    const skipped = Object.keys(fields).filter(name => name in have);
    const res =
      existing.status === 200
        ? await rest('PUT', `/schemas/${className}`, { className, fields: add })
        : await rest('POST', `/schemas/${className}`, { className, fields: add });
    if (res.status !== 200) {
      throw new Error(`schema ${className}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    }
    log(
      `${existing.status === 200 ? 'PUT ' : 'POST'} /schemas/${className}: +${Object.keys(add).join(',')}` +
        (skipped.length ? ` (built-in, kept as Parse defines them: ${skipped.join(',')})` : '')
    );
  }

  // Parse rebuilds its GraphQL schema lazily from the schema cache: poll until every class is there.
  const query = getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
  });
  let result;
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${base}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query }) });
    const body = await res.json();
    if (res.status !== 200 || body.errors) {
      throw new Error(`introspection: HTTP ${res.status} ${JSON.stringify(body.errors ?? body)}`);
    }
    const names = new Set(body.data.__schema.types.map(t => t.name));
    const wanted = [...GRAPHQL_NAMES, ...GRAPHQL_NAMES.map(g => `Create${g}FieldsInput`)];
    const missing = wanted.filter(n => !names.has(n));
    if (!missing.length) {
      result = body.data;
      log(`introspection complete (attempt ${attempt}, ${names.size} types)`);
      break;
    }
    if (attempt >= 60) throw new Error(`introspection still lacks ${missing.join(', ')}`);
    await new Promise(r => setTimeout(r, 500));
  }

  writeFileSync(OUT, JSON.stringify(canonical(result), null, 2) + '\n');
  log(`wrote ${OUT}`);
} finally {
  if (parseServer) {
    // handleShutdown closes the HTTP server it is given and the database pool.
    parseServer.server = httpServer ?? { close: cb => cb() };
    await parseServer.handleShutdown();
  }
  if (dbCreated) {
    await admin(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
    log(`dropped database ${DB}`);
  }
}
log('done');
