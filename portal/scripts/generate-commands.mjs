// Writes src/generated/commands.json from the server's command catalog (agent_portal.domain.commands).
// Run after the catalog changes: `npm run generate:commands`; tests/e2e/test_command_catalog.py checks it is fresh.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const python = process.env.AGENT_PORTAL_PYTHON ?? fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));
const code = [
  'import json',
  'from agent_portal.domain.commands import command_catalog',
  'print(json.dumps([c.to_dict() for c in command_catalog()], indent=2))',
].join('\n');
const out = execFileSync(python, ['-c', code], { encoding: 'utf8' });
writeFileSync(new URL('../src/generated/commands.json', import.meta.url), out);
