#!/usr/bin/env node
// Generates src/generated/protocol.ts from the server's JSON Schema (agent_portal.protocol).
//
//   node scripts/generate-types.mjs            write the file
//   node scripts/generate-types.mjs --check    regenerate to a temp file, fail if the committed one differs
//   node scripts/generate-types.mjs --schema schema.json   read the schema from a file instead of Python
//
// A small emitter of our own rather than json-schema-to-typescript: the schema uses a handful of
// keywords, and we want one interface per model named exactly as the pydantic model, `T | null` for
// optionals, and no invented names for inline enums.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outputPath = join(packageDir, 'src', 'generated', 'protocol.ts');
const python = process.env.AGENT_PORTAL_PYTHON ?? resolve(packageDir, '..', '..', '.venv', 'bin', 'python');

// The schema export module may not exist yet; the registry function is its source either way.
const EXPORT_MODULE = 'agent_portal.protocol.export';
const REGISTRY_SNIPPET =
  'import json; from agent_portal.protocol.registry import json_schema; print(json.dumps(json_schema(), indent=2))';

function loadSchema(schemaFile) {
  if (schemaFile) return JSON.parse(readFileSync(schemaFile, 'utf8'));
  const exported = spawnSync(python, ['-m', EXPORT_MODULE], { encoding: 'utf8' });
  if (exported.status === 0 && exported.stdout.trim().startsWith('{')) return JSON.parse(exported.stdout);
  if (!/No module named/.test(exported.stderr ?? '') && exported.error === undefined) {
    throw new Error(`${python} -m ${EXPORT_MODULE} failed:\n${exported.stderr}`);
  }
  const fallback = spawnSync(python, ['-c', REGISTRY_SNIPPET], { encoding: 'utf8' });
  if (fallback.error) throw new Error(`cannot run ${python}: ${fallback.error.message} (set AGENT_PORTAL_PYTHON)`);
  if (fallback.status !== 0) throw new Error(`reading the schema from ${python} failed:\n${fallback.stderr}`);
  return JSON.parse(fallback.stdout);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const propertyKey = (name) => (IDENTIFIER.test(name) ? name : JSON.stringify(name));
const refName = (ref) => {
  const match = /^#\/\$defs\/(.+)$/.exec(ref);
  if (!match) throw new Error(`unsupported $ref ${ref}`);
  return match[1];
};

function isUnion(type) {
  let depth = 0;
  for (const char of type) {
    if ('<({['.includes(char)) depth += 1;
    else if ('>)}]'.includes(char)) depth -= 1;
    else if (char === '|' && depth === 0) return true;
  }
  return false;
}

function typeOf(schema, indent) {
  if (schema === true || schema === undefined) return 'unknown';
  if (schema.$ref) return refName(schema.$ref);
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (schema.anyOf || schema.oneOf) {
    const members = (schema.anyOf ?? schema.oneOf).map((member) => typeOf(member, indent));
    return [...new Set(members)].join(' | ');
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length === 0) return 'unknown';
  return types.map((type) => singleType(type, schema, indent)).join(' | ');
}

function singleType(type, schema, indent) {
  switch (type) {
    case 'string':
      return 'string';
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array': {
      const item = typeOf(schema.items, indent);
      return isUnion(item) ? `Array<${item}>` : `${item}[]`;
    }
    case 'object':
      return objectType(schema, indent);
    default:
      throw new Error(`unsupported type ${type}`);
  }
}

function objectType(schema, indent) {
  const properties = Object.entries(schema.properties ?? {});
  const extra = schema.additionalProperties;
  if (properties.length === 0) {
    if (extra === false) return 'Record<string, never>';
    return `Record<string, ${extra && extra !== true ? typeOf(extra, indent) : 'unknown'}>`;
  }
  const lines = ['{', ...propertyLines(schema, indent + 1), `${'  '.repeat(indent)}}`];
  return lines.join('\n');
}

function propertyLines(schema, indent) {
  const pad = '  '.repeat(indent);
  const required = new Set(schema.required ?? []);
  const lines = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    lines.push(...docLines(property, pad));
    const optional = required.has(name) ? '' : '?';
    lines.push(`${pad}${propertyKey(name)}${optional}: ${typeOf(property, indent)};`);
  }
  if (schema.additionalProperties && schema.additionalProperties !== false) {
    lines.push(`${pad}[key: string]: unknown;`);
  }
  return lines;
}

const CONSTRAINTS = ['format', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum',
  'exclusiveMaximum', 'minItems', 'maxItems', 'minProperties', 'maxProperties'];

function constraintsOf(schema) {
  const found = [];
  const visit = (node) => {
    if (!node || typeof node !== 'object') return;
    for (const key of CONSTRAINTS) if (node[key] !== undefined) found.push(`@${key} ${node[key]}`);
    for (const member of node.anyOf ?? []) visit(member);
  };
  visit(schema);
  return found;
}

function docLines(schema, pad) {
  const text = [];
  if (schema.description) text.push(...schema.description.split('\n'));
  text.push(...constraintsOf(schema));
  if (schema.default !== undefined && schema.default !== null) text.push(`@default ${JSON.stringify(schema.default)}`);
  if (text.length === 0) return [];
  if (text.length === 1) return [`${pad}/** ${text[0]} */`];
  return [`${pad}/**`, ...text.map((line) => `${pad} * ${line}`.trimEnd()), `${pad} */`];
}

function emitDefinition(name, schema) {
  const docs = docLines({ description: schema.description }, '');
  const isInterface = schema.type === 'object' && Object.keys(schema.properties ?? {}).length > 0;
  if (isInterface) {
    return [...docs, `export interface ${name} {`, ...propertyLines(schema, 1), '}'].join('\n');
  }
  return [...docs, `export type ${name} = ${typeOf(schema, 0)};`].join('\n');
}

function emitEventMap(name, doc, events, indent = 0) {
  const pad = '  '.repeat(indent);
  const body = Object.entries(events).map(([event, model]) => `${pad}  ${propertyKey(event)}: ${model};`);
  return [`${pad}/** ${doc} */`, `${pad}export interface ${name} {`, ...body, `${pad}}`].join('\n');
}

function generate(schema) {
  const defs = schema.$defs ?? {};
  const clientEvents = schema['x-client-events'] ?? {};
  const serverEvents = schema['x-server-events'] ?? {};
  const kinds = Object.keys(clientEvents);
  const literalUnion = (values) => (values.length ? values.map((value) => JSON.stringify(value)).join(' | ') : 'never');
  const parts = [
    '// Generated by scripts/generate-types.mjs from the server\'s JSON Schema (agent_portal.protocol).',
    '// Do not edit: change the pydantic models, then run `npm run generate:types`.',
    '/* eslint-disable */',
    '',
    ...Object.keys(defs)
      .sort()
      .map((name) => `${emitDefinition(name, defs[name])}\n`),
    `/** The kinds of namespace: \`/portal\`, \`/project/{name}\`, \`/chat/{name}\`, ... */`,
    `export type NamespaceKind = ${literalUnion(kinds)};\n`,
    emitEventMap('ServerEvents', 'Every event the server emits, by name, with its payload.', serverEvents),
    '',
    '/** The events a client may send, per namespace kind, with their payloads. */',
    'export interface ClientEvents {',
    ...kinds.map((kind) => {
      const body = Object.entries(clientEvents[kind]).map(([event, model]) => `    ${propertyKey(event)}: ${model};`);
      return [`  ${propertyKey(kind)}: {`, ...body, '  };'].join('\n');
    }),
    '}',
    '',
    '/** A project\'s workflow events (delivered on `/project/{name}` and to joined sockets on `/portal`). */',
    `export type ProjectEventName = ${literalUnion(schema['x-project-events'] ?? [])};\n`,
    '/** A project\'s agent and TDD events plus `system_metrics` (delivered on `/monitoring`). */',
    `export type MonitoringEventName = ${literalUnion(schema['x-monitoring-events'] ?? [])};`,
    '',
  ];
  return parts.join('\n');
}

function main(argv) {
  const check = argv.includes('--check');
  const schemaIndex = argv.indexOf('--schema');
  const schemaFile = schemaIndex >= 0 ? argv[schemaIndex + 1] : undefined;
  const source = generate(loadSchema(schemaFile));
  if (!check) {
    writeFileSync(outputPath, source);
    console.log(`wrote ${outputPath}`);
    return 0;
  }
  const tempDir = mkdtempSync(join(tmpdir(), 'agent-portal-types-'));
  try {
    const tempPath = join(tempDir, 'protocol.ts');
    writeFileSync(tempPath, source);
    const committed = readFileSync(outputPath, 'utf8');
    if (committed === source) {
      console.log('src/generated/protocol.ts is up to date');
      return 0;
    }
    const diff = spawnSync('diff', ['-u', outputPath, tempPath], { encoding: 'utf8' });
    console.error(diff.stdout || '(diff unavailable)');
    console.error('src/generated/protocol.ts is stale: run `npm run generate:types` and commit the result.');
    return 1;
  } finally {
    rmSync(tempDir, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
