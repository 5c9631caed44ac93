import { rmSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  WebSocketErrorHandler,
  WebSocketManager,
  type DisconnectedNotification,
  type ReconnectingNotification,
  type WebSocketError,
} from '../../src/index.js';
import { nextEvent, sleep } from '../support/live.js';
import { LiveServer, mintToken } from '../support/server.js';

// A server of its own: this file stops it and starts it again on the same port and data dir.
let server: LiveServer;

beforeAll(async () => {
  server = await LiveServer.start({ projects: ['demo'] });
});

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(server.dataDir, { recursive: true, force: true });
});

describe('reconnection across a server restart', () => {
  it('backs off while the server is down and reconnects when it is back', { timeout: 90_000 }, async () => {
    const networkErrors: WebSocketError[] = [];
    const manager = new WebSocketManager({
      url: server.url,
      token: mintToken(server.dataDir, 'restart-user', 'member', ['demo']),
      errorHandler: new WebSocketErrorHandler({ network: (error) => networkErrors.push(error) }),
    });
    try {
      await Promise.all([nextEvent(manager, '/portal', 'connected'), nextEvent(manager, '/project/demo', 'connected')]);
      await manager.request('/project/demo', 'join_project', { project_name: 'demo' });

      const schedules: ReconnectingNotification[] = [];
      const disconnects: DisconnectedNotification[] = [];
      manager.subscribe('/project/demo', 'reconnecting', (schedule) => schedules.push(schedule));
      manager.subscribe('/project/demo', 'disconnected', (event) => disconnects.push(event));

      await server.stop();
      // Down long enough for three retries (0.5–1 s, 1–2 s, 2–4 s) to fail.
      const deadline = Date.now() + 20_000;
      while (schedules.length < 4 && Date.now() < deadline) await sleep(50);
      expect(schedules.length).toBeGreaterThanOrEqual(4);

      const back = Promise.all([
        nextEvent(manager, '/portal', 'connected', 40_000),
        nextEvent(manager, '/project/demo', 'connected', 40_000),
      ]);
      await server.start();
      const [portal, project] = await back;
      expect(portal.namespace).toBe('/portal');
      expect(project.namespace).toBe('/project/demo');

      expect(disconnects.map(({ reason }) => reason)).toHaveLength(1);
      expect(schedules.map(({ attempt }) => attempt)).toEqual(schedules.map((_, index) => index + 1));
      schedules.forEach(({ delay }, index) => {
        const base = Math.min(1000 * 2 ** index, 30_000);
        expect(delay).toBeGreaterThanOrEqual(base * 0.5);
        expect(delay).toBeLessThanOrEqual(base);
      });
      expect(networkErrors.length).toBeGreaterThanOrEqual(3);
      expect(manager.reconnection?.attempts('/project/demo')).toBe(0);
      expect(manager.reconnection?.attempts('/portal')).toBe(0);

      // The same token still works (the data dir keeps the secret) and the namespace is usable again.
      await expect(manager.request('/project/demo', 'join_project', { project_name: 'demo' })).resolves.toMatchObject({
        project_name: 'demo',
      });
    } finally {
      manager.disconnect();
    }
  });
});
