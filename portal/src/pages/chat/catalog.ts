import catalog from '../../generated/commands.json';

export interface CommandInfo {
  command: string;
  usage: string;
  description: string;
  parameters: string[];
  available_in_state: string[];
  category: string;
  read_only: boolean;
}

// Generated from the server's catalog at build time (npm run generate:commands).
const COMMANDS = catalog as CommandInfo[];
const BY_NAME = new Map(COMMANDS.map((c) => [c.command, c]));

export const catalogEntry = (command: string): CommandInfo | undefined => BY_NAME.get(command);

/**
 * Autocomplete: the commands allowed now (the snapshot's `allowed_commands`, which follows the state)
 * whose name starts with what was typed. Stops suggesting once arguments are being typed.
 */
export function suggest(allowed: string[], text: string): CommandInfo[] {
  if (!text.startsWith('/')) return [];
  const typed = text.toLowerCase();
  return allowed
    .filter((name) => name.startsWith(typed.trimEnd()) || (typed.length > 1 && name.startsWith(typed)))
    .filter((name) => !typed.startsWith(`${name} `))
    .map((name) => BY_NAME.get(name) ?? { command: name, usage: name, description: '', parameters: [], available_in_state: [], category: '', read_only: false });
}
