import { afterEach, describe, expect, it } from 'vitest';

import {
  WebSocketErrorHandler,
  WebSocketManager,
  WebSocketRequestError,
  type ReconnectingNotification,
  type WebSocketError,
} from '../../src/index.js';
import { freePort } from '../support/ports.js';

// Nothing listens on the port: every connect is refused by the OS, no server involved.
let manager: WebSocketManager | undefined;

afterEach(() => {
  manager?.disconnect();
  manager = undefined;
});

describe('WebSocketManager without a server', () => {
  it('routes a refused connection as a network error and backs off until it gives up', async () => {
    const routed: WebSocketError[] = [];
    manager = new WebSocketManager({
      url: `http://127.0.0.1:${await freePort()}`,
      token: 'unused',
      transports: ['websocket'],
      reconnection: { baseDelay: 40, maxAttempts: 3 },
      errorHandler: new WebSocketErrorHandler({
        network: (error) => routed.push(error),
        connection: (error) => routed.push(error),
      }),
    });
    const scheduled: ReconnectingNotification[] = [];
    const errors: WebSocketError[] = [];
    manager.subscribe('/portal', 'reconnecting', (schedule) => scheduled.push(schedule));
    manager.subscribe('/portal', 'error', (error) => errors.push(error));
    const failed = new Promise<number>((resolve) => {
      manager?.subscribe('/portal', 'reconnect_failed', ({ attempts }) => resolve(attempts));
    });
    const waiting = manager.request('/portal', 'join_project', { project_name: 'demo' });
    const outcome = waiting.catch((error: unknown) => error);

    expect(await failed).toBe(3);
    // The request waited through the retries and fails with the give-up, not with a timeout.
    expect(await outcome).toMatchObject({ type: 'connection', code: 'reconnect_failed' });
    await expect(manager.request('/portal', 'leave_project', { project_name: 'demo' })).rejects.toMatchObject({
      code: 'reconnect_failed',
    });
    expect(scheduled.map(({ attempt }) => attempt)).toEqual([1, 2, 3]);
    scheduled.forEach(({ delay }, index) => {
      const base = 40 * 2 ** index;
      expect(delay).toBeGreaterThanOrEqual(base / 2);
      expect(delay).toBeLessThanOrEqual(base);
    });
    expect(errors.map(({ type }) => type)).toEqual(['network', 'network', 'network', 'network', 'connection']);
    expect(errors.at(-1)?.code).toBe('reconnect_failed');
    expect(routed).toEqual(errors);
    expect(manager.isConnected('/portal')).toBe(false);

    // Giving up is final until asked: then the attempts start over.
    const again = new Promise<ReconnectingNotification>((resolve) => {
      manager?.subscribe('/portal', 'reconnecting', resolve);
    });
    manager.reconnect('/portal');
    expect((await again).attempt).toBe(1);
  });

  it('rejects a request that gets no reply in time', async () => {
    manager = new WebSocketManager({
      url: `http://127.0.0.1:${await freePort()}`,
      reconnection: false,
      errorHandler: null,
    });
    const reply = manager.request('/chat/demo', 'get_history', { limit: 10 }, { timeout: 100 });
    await expect(reply).rejects.toBeInstanceOf(WebSocketRequestError);
    await expect(reply).rejects.toMatchObject({ type: 'network', code: 'ack_timeout', event: 'get_history' });
  });

  it('keeps one socket per namespace and forgets it on disconnect', async () => {
    manager = new WebSocketManager({ url: `http://127.0.0.1:${await freePort()}`, reconnection: false, errorHandler: null });
    const portal = manager.connect('/portal');
    expect(manager.connect('/portal')).toBe(portal);
    manager.connect('/monitoring');
    expect(manager.namespaces()).toEqual(['/portal', '/monitoring']);
    manager.disconnect('/portal');
    expect(manager.namespaces()).toEqual(['/monitoring']);
    manager.disconnect();
    expect(manager.namespaces()).toEqual([]);
  });

  it('needs a url outside a browser', () => {
    expect(() => new WebSocketManager()).toThrow(/url/);
  });
});
