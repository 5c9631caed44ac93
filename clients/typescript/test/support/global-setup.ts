import { rmSync } from 'node:fs';

import type { TestProject } from 'vitest/node';

import { LiveServer } from './server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    serverUrl: string;
    dataDir: string;
  }
}

/** One live server for the `live` project; tests that stop and restart a server start their own. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await LiveServer.start({ projects: ['demo', 'other'] });
  project.provide('serverUrl', server.url);
  project.provide('dataDir', server.dataDir);
  return async () => {
    await server.stop();
    rmSync(server.dataDir, { recursive: true, force: true });
  };
}
