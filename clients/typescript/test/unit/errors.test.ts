import { afterEach, describe, expect, it, vi } from 'vitest';

import {
  WebSocketErrorHandler,
  WebSocketRequestError,
  fromConnectError,
  fromServerErrorEvent,
  fromWireError,
  makeError,
  type WebSocketError,
  type WebSocketErrorType,
} from '../../src/index.js';

const TYPES: WebSocketErrorType[] = ['connection', 'authentication', 'validation', 'server', 'network'];

afterEach(() => {
  vi.restoreAllMocks();
});

describe('WebSocketErrorHandler', () => {
  it('routes each of the five types to its own handler', () => {
    const routed: Array<[WebSocketErrorType, string, string]> = [];
    const route = (type: WebSocketErrorType) => (error: WebSocketError, namespace: string) => {
      routed.push([type, error.type, namespace]);
    };
    const handler = new WebSocketErrorHandler({
      connection: route('connection'),
      authentication: route('authentication'),
      validation: route('validation'),
      server: route('server'),
      network: route('network'),
    });
    for (const type of TYPES) handler.handle(makeError(type, `a ${type} error`), '/portal');
    expect(routed).toEqual(TYPES.map((type) => [type, type, '/portal']));
  });

  it('logs to the console by default, as the spec', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const handler = new WebSocketErrorHandler();
    for (const type of TYPES) handler.handle(makeError(type, `a ${type} error`), '/chat/demo');
    expect(warn.mock.calls).toEqual([
      ['Connection error on /chat/demo:', 'a connection error'],
      ['Network error on /chat/demo:', 'a network error'],
    ]);
    expect(error.mock.calls).toEqual([
      ['Authentication error on /chat/demo:', 'a authentication error'],
      ['Validation error on /chat/demo:', 'a validation error'],
      ['Server error on /chat/demo:', 'a server error'],
    ]);
    WebSocketErrorHandler.handle(makeError('server', 'static'), '/admin');
    expect(error).toHaveBeenLastCalledWith('Server error on /admin:', 'static');
  });

  it('lets a subclass override one route and keep the others', () => {
    const seen: string[] = [];
    class RedirectOnAuth extends WebSocketErrorHandler {
      protected override handleAuthError(error: WebSocketError): void {
        seen.push(error.code ?? '');
      }
    }
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const handler = new RedirectOnAuth();
    handler.handle(makeError('authentication', 'bad token', 'invalid_token'), '/portal');
    handler.handle(makeError('network', 'offline'), '/portal');
    expect(seen).toEqual(['invalid_token']);
    expect(warn).toHaveBeenCalledOnce();
  });
});

describe('error mapping', () => {
  it('reads a wire WebSocketError, timestamp as a Date', () => {
    const error = fromWireError({
      type: 'server',
      message: 'Unknown event',
      code: 'unknown_event',
      timestamp: '2026-11-25T20:00:00.000Z',
    });
    expect(error).toEqual({
      type: 'server',
      message: 'Unknown event',
      code: 'unknown_event',
      timestamp: new Date('2026-11-25T20:00:00.000Z'),
    });
    expect(fromWireError('garbage').code).toBe('malformed_error');
  });

  it('maps refused connects by code and failed transports to network', () => {
    const refused = (code: string) =>
      fromConnectError(Object.assign(new Error('refused'), { data: { message: `no: ${code}`, code } }));
    expect(refused('invalid_token')).toMatchObject({ type: 'authentication', code: 'invalid_token', message: 'no: invalid_token' });
    expect(refused('token_expired').type).toBe('authentication');
    expect(refused('forbidden').type).toBe('authentication');
    expect(refused('too_many_connections').type).toBe('connection');
    expect(refused('banned').type).toBe('connection');
    expect(refused('project_not_found').type).toBe('connection');
    expect(fromConnectError(new Error('websocket error'))).toMatchObject({ type: 'network', code: 'transport_error' });
    expect(fromConnectError(new Error('timeout'))).toMatchObject({ type: 'network', code: 'connect_timeout' });
  });

  it('maps the server error events', () => {
    expect(
      fromServerErrorEvent('error', {
        type: 'server',
        message: 'Unknown event: nope',
        code: 'unknown_event',
        timestamp: '2026-11-25T20:00:00.000Z',
      }),
    ).toMatchObject({ type: 'server', code: 'unknown_event' });
    expect(
      fromServerErrorEvent('validation_error', {
        message: 'Invalid message format',
        details: [{ path: 'content', message: 'too short' }],
      }),
    ).toMatchObject({
      type: 'validation',
      message: 'Invalid message format',
      code: 'validation_error',
      details: [{ path: 'content', message: 'too short' }],
    });
    expect(fromServerErrorEvent('authentication_failed', { message: 'Not authenticated', code: 'not_authenticated' }))
      .toMatchObject({ type: 'authentication', code: 'not_authenticated' });
    expect(fromServerErrorEvent('rate_limited', { message: 'Rate limit exceeded', retry_after: 800 })).toMatchObject({
      type: 'validation',
      code: 'rate_limited',
      details: { retry_after: 800 },
    });
    expect(fromServerErrorEvent('state_change', {})).toBeUndefined();
  });

  it('rejects requests with an Error that is a WebSocketError', () => {
    const error = new WebSocketRequestError(makeError('validation', 'bad', 'validation_error', []), '/chat/x', 'send_message');
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ type: 'validation', message: 'bad', code: 'validation_error', namespace: '/chat/x', event: 'send_message' });
    expect(error.timestamp).toBeInstanceOf(Date);
  });
});
