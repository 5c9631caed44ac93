import { describe, expect, inject, it, vi } from 'vitest';

import type { JoinedProjectEvent, MessageReceivedEvent } from '../../src/index.js';
import { liveClient, newUser, nextEvent, record, sleep } from '../support/live.js';
import { mintToken } from '../support/server.js';

describe('WebSocketManager against a live server', () => {
  it('connects a namespace with the token and notifies `connected`', async () => {
    const { manager } = liveClient();
    const connected = nextEvent(manager, '/portal', 'connected');
    const socket = manager.connect('/portal');
    expect(await connected).toEqual({ namespace: '/portal', recovered: false });
    expect(manager.isConnected('/portal')).toBe(true);
    expect(manager.connect('/portal')).toBe(socket);
  });

  it('asks a token function at every connect, so a refreshed token is used on reconnect', async () => {
    const user = newUser('refresh');
    const dataDir = inject('dataDir');
    const source = vi.fn(async () => mintToken(dataDir, user, 'member', ['demo']));
    const { manager } = liveClient({ token: source, user });
    await nextEvent(manager, '/monitoring', 'connected');
    expect(source).toHaveBeenCalledTimes(1);
    const back = nextEvent(manager, '/monitoring', 'connected');
    manager.connect('/monitoring').io.engine.close();
    await back;
    expect(source).toHaveBeenCalledTimes(2);
  });

  it('resolves a request with the ack data and fans the event out to subscribers', async () => {
    const { manager } = liveClient();
    const first: JoinedProjectEvent[] = [];
    const second: JoinedProjectEvent[] = [];
    const elsewhere: unknown[] = [];
    manager.subscribe('/portal', 'joined_project', (event) => first.push(event));
    manager.subscribe('/portal', 'joined_project', (event) => second.push(event));
    manager.subscribe('/project/demo', 'joined_project', (event) => elsewhere.push(event));
    const event = nextEvent(manager, '/portal', 'joined_project');

    const data = await manager.request('/portal', 'join_project', { project_name: 'demo' });

    expect(data).toMatchObject({ project_name: 'demo' });
    expect(await event).toMatchObject({ project_name: 'demo', current_state: expect.any(String) });
    expect(first).toEqual([await event]);
    expect(second).toEqual([await event]);
    expect(elsewhere).toEqual([]);
  });

  it('stops calling a callback once unsubscribed', async () => {
    const { manager } = liveClient();
    const calls: JoinedProjectEvent[] = [];
    const unsubscribe = manager.subscribe('/portal', 'joined_project', (event) => calls.push(event));
    await manager.request('/portal', 'join_project', { project_name: 'demo' });
    await sleep(100);
    expect(calls).toHaveLength(1);
    unsubscribe();
    unsubscribe();
    await manager.request('/portal', 'leave_project', { project_name: 'demo' });
    const again = nextEvent(manager, '/portal', 'joined_project');
    await manager.request('/portal', 'join_project', { project_name: 'demo' });
    await again;
    expect(calls).toHaveLength(1);
  });

  it('emits without an ack', async () => {
    const { manager } = liveClient();
    const joined = nextEvent(manager, '/project/demo', 'joined_project');
    manager.emit('/project/demo', 'join_project', { project_name: 'demo' });
    expect(await joined).toMatchObject({ project_name: 'demo' });
  });

  it('sends a chat message and hears it back', async () => {
    const { manager, user } = liveClient();
    const received = nextEvent(manager, '/chat/demo', 'message_received', 5000, (m) => m.content === 'hello from ts');
    await manager.request('/chat/demo', 'send_message', { content: 'hello from ts', type: 'message' });
    const message: MessageReceivedEvent = await received;
    expect(message).toMatchObject({ project_name: 'demo', user_id: user, content: 'hello from ts', type: 'message' });
    const history = await manager.request('/chat/demo', 'get_history', { limit: 10 });
    expect(JSON.stringify(history)).toContain('hello from ts');
  });

  it('reads a project snapshot', async () => {
    const { manager } = liveClient({ role: 'viewer' });
    const snapshot = await manager.request('/project/demo', 'get_snapshot', {});
    expect(snapshot).toMatchObject({ project_name: 'demo' });
  });

  it('disconnects one namespace, or all, without reconnecting', async () => {
    const { manager } = liveClient();
    await Promise.all([
      nextEvent(manager, '/portal', 'connected'),
      nextEvent(manager, '/monitoring', 'connected'),
      nextEvent(manager, '/project/demo', 'connected'),
    ]);
    const reconnecting = record(manager, '/portal', 'reconnecting');
    const portalDown = nextEvent(manager, '/portal', 'disconnected');
    manager.disconnect('/portal');
    expect(await portalDown).toEqual({ namespace: '/portal', reason: 'io client disconnect' });
    expect(manager.isConnected('/portal')).toBe(false);
    expect(manager.isConnected('/monitoring')).toBe(true);

    const down = [nextEvent(manager, '/monitoring', 'disconnected'), nextEvent(manager, '/project/demo', 'disconnected')];
    manager.disconnect();
    await Promise.all(down);
    expect(manager.namespaces()).toEqual([]);
    await sleep(1500);
    expect(reconnecting).toEqual([]);

    // Subscriptions outlive a disconnect: connecting again delivers to them.
    const back = nextEvent(manager, '/portal', 'connected');
    manager.connect('/portal');
    await back;
  });

  it('reconnects on its own when the transport drops, with the spec backoff', async () => {
    const { manager } = liveClient();
    await nextEvent(manager, '/project/demo', 'connected');
    await manager.request('/project/demo', 'join_project', { project_name: 'demo' });
    const scheduled = nextEvent(manager, '/project/demo', 'reconnecting');
    const back = nextEvent(manager, '/project/demo', 'connected');
    manager.connect('/project/demo').io.engine.close();
    const { attempt, delay } = await scheduled;
    expect(attempt).toBe(1);
    expect(delay).toBeGreaterThanOrEqual(500);
    expect(delay).toBeLessThanOrEqual(1000);
    await back;
    expect(manager.reconnection?.attempts('/project/demo')).toBe(0);
    await expect(manager.request('/project/demo', 'join_project', { project_name: 'demo' })).resolves.toMatchObject({
      project_name: 'demo',
    });
  });
});

describe.each([
  ['websocket only', ['websocket'] as const],
  ['polling only', ['polling'] as const],
  ['polling, upgraded to websocket', ['polling', 'websocket'] as const],
])('over %s', (_label, transports) => {
  it('connects and gets acks', async () => {
    const { manager } = liveClient({ transports: [...transports] });
    await expect(manager.request('/portal', 'join_project', { project_name: 'demo' })).resolves.toMatchObject({
      project_name: 'demo',
    });
    const socket = manager.connect('/portal');
    if (transports.length === 2) await expect.poll(() => socket.io.engine.transport.name).toBe('websocket');
    else expect(socket.io.engine.transport.name).toBe(transports[0]);
  });
});
