import { describe, expect, inject, it } from 'vitest';

import {
  WebSocketErrorHandler,
  WebSocketRequestError,
  type WebSocketError,
  type WebSocketErrorType,
} from '../../src/index.js';
import { liveClient, newUser, nextEvent, record, sleep } from '../support/live.js';
import { mintToken } from '../support/server.js';

function routingHandler(): { handler: WebSocketErrorHandler; routed: Array<[WebSocketErrorType, WebSocketError, string]> } {
  const routed: Array<[WebSocketErrorType, WebSocketError, string]> = [];
  const route = (type: WebSocketErrorType) => (error: WebSocketError, namespace: string) => {
    routed.push([type, error, namespace]);
  };
  const handler = new WebSocketErrorHandler({
    connection: route('connection'),
    authentication: route('authentication'),
    validation: route('validation'),
    server: route('server'),
    network: route('network'),
  });
  return { handler, routed };
}

describe('errors from a live server, routed by type', () => {
  it('an invalid token is an authentication error and is not retried', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ token: 'not-a-jwt', errorHandler: handler });
    const reconnecting = record(manager, '/portal', 'reconnecting');
    const error = nextEvent(manager, '/portal', 'error');
    // Sent before the refusal (buffered): failed with it, not left to time out.
    const early = manager.request('/portal', 'join_project', { project_name: 'demo' });
    expect(await error).toMatchObject({ type: 'authentication', code: 'invalid_token' });
    await expect(early).rejects.toMatchObject({ type: 'authentication', code: 'invalid_token' });
    await expect(manager.request('/portal', 'join_project', { project_name: 'demo' })).rejects.toMatchObject({
      code: 'invalid_token',
    });
    expect(routed.map(([type, , namespace]) => [type, namespace])).toEqual([['authentication', '/portal']]);
    await sleep(1500);
    expect(reconnecting).toEqual([]);
    expect(manager.isConnected('/portal')).toBe(false);
  });

  it('an expired token is retried when the token source can refresh it', async () => {
    const { handler, routed } = routingHandler();
    const user = newUser('expiring');
    const dataDir = inject('dataDir');
    const expired = mintToken(dataDir, user, 'member', ['demo'], 1);
    await sleep(2100);
    const tokens = [expired, mintToken(dataDir, user, 'member', ['demo'])];
    const { manager } = liveClient({ user, token: () => tokens.shift(), errorHandler: handler });
    const scheduled = nextEvent(manager, '/portal', 'reconnecting');
    await nextEvent(manager, '/portal', 'connected', 10_000);
    expect(routed.map(([type, e]) => [type, e.code])).toEqual([['authentication', 'token_expired']]);
    expect((await scheduled).attempt).toBe(1);
  });

  it('a project outside the token is refused at connect', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ projects: ['demo'], errorHandler: handler });
    const error = await nextEvent(manager, '/project/other', 'error');
    expect(error).toMatchObject({ type: 'authentication', code: 'forbidden' });
    expect(routed[0]?.[0]).toBe('authentication');
  });

  it('a bad payload rejects the request and routes a validation error', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ errorHandler: handler });
    const validationEvent = nextEvent(manager, '/chat/demo', 'validation_error');
    const reply = manager.request('/chat/demo', 'send_message', { content: '', type: 'message' });
    await expect(reply).rejects.toBeInstanceOf(WebSocketRequestError);
    await expect(reply).rejects.toMatchObject({
      type: 'validation',
      message: 'Invalid message format',
      namespace: '/chat/demo',
      event: 'send_message',
    });
    const event = await validationEvent;
    expect(event.message).toBe('Invalid message format');
    expect(event.details.map((detail) => detail.path)).toContain('content');
    expect(routed.map(([type]) => type)).toEqual(['validation']);
  });

  it('an unknown event is answered by the server `error` event, code `unknown_event`', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ errorHandler: handler });
    const errorEvent = nextEvent(manager, '/portal', 'error');
    // Outside the generated types on purpose.
    const reply = manager.request('/portal', 'no_such_event' as 'join_project', {} as { project_name: string });
    await expect(reply).rejects.toMatchObject({ code: 'unknown_event', details: { event: 'no_such_event' } });
    const error = await errorEvent;
    expect(error).toMatchObject({ code: 'unknown_event', message: 'Unknown event: no_such_event' });
    expect(error.timestamp).toBeInstanceOf(Date);
    // Decisions §3 fixes the code, not the type; the server sends `validation` (UnknownEventError).
    expect(routed.map(([type, e]) => [type, e.code])).toEqual([[error.type, 'unknown_event']]);
  });

  it('a missing permission is refused', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ role: 'viewer', errorHandler: handler });
    const reply = manager.request('/chat/demo', 'typing_start', {});
    await expect(reply).rejects.toMatchObject({ code: 'forbidden' });
    expect(routed.map(([, e]) => e.code)).toEqual(['forbidden']);
  });

  it('events before authenticating are refused with authentication_failed', async () => {
    const { handler, routed } = routingHandler();
    const { token } = liveClient();
    const { manager } = liveClient({ token: () => undefined, errorHandler: handler });
    await nextEvent(manager, '/portal', 'connected');
    const failed = nextEvent(manager, '/portal', 'authentication_failed');
    await expect(manager.request('/portal', 'join_project', { project_name: 'demo' })).rejects.toMatchObject({
      type: 'authentication',
      code: 'not_authenticated',
    });
    expect(await failed).toEqual({ message: 'Not authenticated', code: 'not_authenticated' });
    expect(routed.map(([type, e]) => [type, e.code])).toEqual([['authentication', 'not_authenticated']]);

    const authenticated = nextEvent(manager, '/portal', 'authenticated');
    await manager.request('/portal', 'authenticate', { token });
    expect((await authenticated).permissions).toContain('projects:read');
    await expect(manager.request('/portal', 'join_project', { project_name: 'demo' })).resolves.toBeDefined();
  });

  it('too many events are rate limited', async () => {
    const { handler, routed } = routingHandler();
    const { manager } = liveClient({ errorHandler: handler });
    await nextEvent(manager, '/chat/demo', 'connected');
    const limited = nextEvent(manager, '/chat/demo', 'rate_limited');
    const replies = Array.from({ length: 12 }, () =>
      manager.request('/chat/demo', 'get_history', { limit: 1 }, { rateLimitRetries: 0 }).then(
        () => 'ok',
        (error: WebSocketRequestError) => error.code ?? error.type,
      ),
    );
    const outcomes = await Promise.all(replies);
    expect(outcomes.filter((outcome) => outcome === 'rate_limited').length).toBeGreaterThan(0);
    expect((await limited).retry_after).toBeGreaterThan(0);
    expect(routed.some(([, e]) => e.code === 'rate_limited')).toBe(true);
  });

  it('a rate-limited request is sent again after retry_after', async () => {
    const { manager } = liveClient();
    await nextEvent(manager, '/chat/demo', 'connected');
    const replies = Array.from({ length: 12 }, () =>
      manager.request('/chat/demo', 'get_history', { limit: 1 }).then(() => 'ok'),
    );
    expect(await Promise.all(replies)).toEqual(Array(12).fill('ok'));
  });
});
