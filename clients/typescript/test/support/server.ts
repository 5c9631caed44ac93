import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort } from './ports.js';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The interpreter with agent_portal installed: $AGENT_PORTAL_PYTHON, else the repo's venv. */
export const python = process.env.AGENT_PORTAL_PYTHON ?? resolve(packageDir, '..', '..', '.venv', 'bin', 'python');

let prefix: string[] | undefined;

/**
 * How to run the CLI without the venv on PATH: `python -m agent_portal` when the package has a
 * `__main__`, else the console script's entry point `agent_portal.cli:main`.
 */
function cliPrefix(): string[] {
  if (prefix) return prefix;
  const probe = spawnSync(python, ['-c', 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("agent_portal.__main__") else 3)']);
  prefix =
    probe.status === 0
      ? ['-m', 'agent_portal']
      : ['-c', 'import sys; from agent_portal.cli import main; sys.argv[0] = "agent-portal"; sys.exit(main())'];
  return prefix;
}

/** Runs the agent-portal CLI and returns its stdout, trimmed; throws with stderr on failure. */
export function cli(args: string[], input?: string): string {
  const result = spawnSync(python, [...cliPrefix(), ...args], { encoding: 'utf8', input, timeout: 60_000 });
  if (result.error) throw new Error(`cannot run ${python}: ${result.error.message} (set AGENT_PORTAL_PYTHON)`);
  if (result.status !== 0) {
    throw new Error(`agent_portal ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
  }
  return result.stdout.trim();
}

export type Role = 'admin' | 'member' | 'viewer';

/** A signed token for `user` from the data dir's secret (`agent-portal token`). */
export function mintToken(dataDir: string, user: string, role: Role, projects: string[] = [], ttl?: number): string {
  const args = ['token', '--data-dir', dataDir, '--user', user, '--role', role];
  for (const project of projects) args.push('--project', project);
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  return cli(args);
}

export function newDataDir(): string {
  return mkdtempSync(join(tmpdir(), 'agent-portal-ts-'));
}

export interface ServerOptions {
  dataDir?: string;
  port?: number;
  /** Projects to create (`agent-portal project add`) before the first start. */
  projects?: string[];
}

/** An `agent-portal serve` process on 127.0.0.1 that can be stopped and started again on its port. */
export class LiveServer {
  private process: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(options: ServerOptions = {}): Promise<LiveServer> {
    const dataDir = options.dataDir ?? newDataDir();
    for (const project of options.projects ?? []) cli(['project', 'add', project, '--data-dir', dataDir]);
    const server = new LiveServer(dataDir, options.port ?? (await freePort()));
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    if (this.process) throw new Error('already running');
    this.output = '';
    const args = [...cliPrefix(), 'serve', '--host', '127.0.0.1', '--port', String(this.port), '--data-dir', this.dataDir];
    const child = spawn(python, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    const echo = process.env.AGENT_PORTAL_SERVER_LOG === '1';
    const collect = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
      if (echo) process.stderr.write(chunk);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    await this.waitUntilHealthy(child);
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.process = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  }

  /** The server's recent stdout and stderr, for failure messages. */
  log(): string {
    return this.output;
  }

  private async waitUntilHealthy(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        this.process = undefined;
        throw new Error(`agent-portal serve exited ${child.exitCode}:\n${this.output}`);
      }
      try {
        const response = await fetch(`${this.url}/healthz`);
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.stop();
    throw new Error(`agent-portal serve did not answer /healthz within 60 s:\n${this.output}`);
  }
}
