// Derives parse-9.10.0-names.json (compact names and type strings for the six classes) from
// parse-9.10.0-schema.json. Node stdlib only:
//
//   node tests/graphql_reference/derive_names.mjs
//
// Output: {"query": {field: type}, "mutation": {field: type}, "args": {"query"|"mutation": {field:
// {arg: type}}}, "types": {Type: {field: type} | [enum values]}, "scalars": [...]}.
// "types" holds the six classes' generated types and the shared ones listed below, plus every named
// type reachable from them through fields, args and input fields (ACL sub-types, SelectInput, ...).

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const schema = JSON.parse(readFileSync(join(HERE, 'parse-9.10.0-schema.json'), 'utf8')).__schema;
const byName = new Map(schema.types.map(t => [t.name, t]));

const CLASSES = ['User', 'Patient', 'MobilityScore', 'EquipmentLog', 'SessionNote', 'StatusHistory'];
const lower = g => g[0].toLowerCase() + g.slice(1);
// Parse pluralizes with npm `pluralize`; take the find field from the schema rather than guess:
// the plural is the query field whose type is GConnection!.
const queryType = byName.get(schema.queryType.name);
const mutationType = byName.get(schema.mutationType.name);

const typeString = ref =>
  ref.kind === 'NON_NULL' ? `${typeString(ref.ofType)}!` : ref.kind === 'LIST' ? `[${typeString(ref.ofType)}]` : ref.name;
const namedOf = ref => (ref.ofType ? namedOf(ref.ofType) : ref.name);

const perClass = g => [
  g,
  `Create${g}FieldsInput`,
  `Update${g}FieldsInput`,
  `${g}WhereInput`,
  `${g}RelationWhereInput`,
  `${g}RelationInput`, // relation-field input Parse also generates per class
  `${g}PointerInput`,
  `${g}Order`,
  `${g}Connection`,
  `${g}Edge`,
  `Create${g}Input`,
  `Create${g}Payload`,
  `Update${g}Input`,
  `Update${g}Payload`,
  `Delete${g}Input`,
  `Delete${g}Payload`,
];
const SHARED = [
  'Viewer', 'SignUpInput', 'SignUpPayload', 'LogInInput', 'LogInPayload', 'LogOutInput', 'LogOutPayload',
  'PageInfo', 'Node', 'ParseObject', 'IdWhereInput', 'StringWhereInput', 'NumberWhereInput',
  'BooleanWhereInput', 'DateWhereInput', 'ReadOptionsInput', 'ACL', 'ACLInput',
];
const wantedTypes = [...CLASSES.flatMap(perClass), ...SHARED];

const wantedQuery = ['health', 'viewer', 'node'];
const wantedMutation = ['signUp', 'logIn', 'logOut'];
for (const g of CLASSES) {
  const find = queryType.fields.find(f => typeString(f.type) === `${g}Connection!`);
  wantedQuery.push(lower(g), find ? find.name : `${lower(g)}s`);
  wantedMutation.push(`create${g}`, `update${g}`, `delete${g}`);
}

const missing = [];
function rootFields(type, wanted) {
  const fields = new Map(type.fields.map(f => [f.name, f]));
  const out = {};
  const args = {};
  for (const name of wanted) {
    const f = fields.get(name);
    if (!f) {
      missing.push(`${type.name}.${name}`);
      continue;
    }
    out[name] = typeString(f.type);
    args[name] = Object.fromEntries(f.args.map(a => [a.name, typeString(a.type)]));
  }
  return { out, args };
}
const q = rootFields(queryType, wantedQuery);
const m = rootFields(mutationType, wantedMutation);

// Closure over referenced named types (not introspection types or built-in scalars).
const BUILTIN = new Set(['String', 'Int', 'Float', 'Boolean', 'ID']);
const types = {};
const scalars = new Set();
const queue = [...wantedTypes];
for (const f of [...queryType.fields, ...mutationType.fields]) {
  if (f.name in q.out || f.name in m.out) {
    queue.push(namedOf(f.type), ...f.args.map(a => namedOf(a.type)));
  }
}
const seen = new Set();
while (queue.length) {
  const name = queue.shift();
  if (seen.has(name) || BUILTIN.has(name)) continue;
  seen.add(name);
  const t = byName.get(name);
  if (!t) {
    if (wantedTypes.includes(name)) missing.push(`type ${name}`);
    continue;
  }
  if (t.kind === 'SCALAR') {
    scalars.add(name);
  } else if (t.kind === 'ENUM') {
    types[name] = t.enumValues.map(v => v.name);
  } else {
    const members = t.fields ?? t.inputFields ?? [];
    types[name] = Object.fromEntries(members.map(f => [f.name, typeString(f.type)]));
    for (const f of members) {
      queue.push(namedOf(f.type), ...(f.args ?? []).map(a => namedOf(a.type)));
    }
    for (const i of t.interfaces ?? []) queue.push(i.name);
  }
}

const sortKeys = o => Object.fromEntries(Object.keys(o).sort().map(k => [k, o[k]]));
const result = {
  query: sortKeys(q.out),
  mutation: sortKeys(m.out),
  args: { query: sortKeys(q.args), mutation: sortKeys(m.args) },
  types: sortKeys(Object.fromEntries(Object.entries(types).map(([k, v]) => [k, Array.isArray(v) ? v : sortKeys(v)]))),
  scalars: [...scalars].sort(),
};
writeFileSync(join(HERE, 'parse-9.10.0-names.json'), JSON.stringify(result, null, 2) + '\n');
console.log(
  `wrote parse-9.10.0-names.json: ${Object.keys(result.query).length} query, ` +
    `${Object.keys(result.mutation).length} mutation fields, ${Object.keys(result.types).length} types`
);
if (missing.length) console.log(`not generated by Parse: ${missing.join(', ')}`);
