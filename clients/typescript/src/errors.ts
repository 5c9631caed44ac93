import type { WebSocketError as WireWebSocketError } from './generated/protocol.js';

export type WebSocketErrorType = 'connection' | 'authentication' | 'validation' | 'server' | 'network';

/** The spec's error record; `timestamp` is a Date (the wire's ISO string, parsed). */
export interface WebSocketError {
  type: WebSocketErrorType;
  message: string;
  code?: string;
  details?: unknown;
  timestamp: Date;
}

/** The rejection of `WebSocketManager.request`: an `Error` that is also a `WebSocketError`. */
export class WebSocketRequestError extends Error implements WebSocketError {
  readonly type: WebSocketErrorType;
  readonly code?: string;
  readonly details?: unknown;
  readonly timestamp: Date;

  constructor(
    error: WebSocketError,
    readonly namespace: string,
    readonly event: string,
  ) {
    super(error.message);
    this.name = 'WebSocketRequestError';
    this.type = error.type;
    if (error.code !== undefined) this.code = error.code;
    if (error.details !== undefined) this.details = error.details;
    this.timestamp = error.timestamp;
  }
}

export function makeError(
  type: WebSocketErrorType,
  message: string,
  code?: string,
  details?: unknown,
  timestamp: Date = new Date(),
): WebSocketError {
  const error: WebSocketError = { type, message, timestamp };
  if (code !== undefined) error.code = code;
  if (details !== undefined && details !== null) error.details = details;
  return error;
}

const ERROR_TYPES: readonly string[] = ['connection', 'authentication', 'validation', 'server', 'network'];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const stringOr = (value: unknown, fallback: string): string => (typeof value === 'string' ? value : fallback);

function parseTimestamp(value: unknown): Date {
  if (typeof value === 'string') {
    const parsed = new Date(value);
    if (!Number.isNaN(parsed.getTime())) return parsed;
  }
  return new Date();
}

/** A server `WebSocketError` (ack error or `error` event) as the client form. */
export function fromWireError(wire: WireWebSocketError | unknown): WebSocketError {
  if (!isRecord(wire)) return makeError('server', 'Malformed error from server', 'malformed_error', wire);
  const type = typeof wire.type === 'string' && ERROR_TYPES.includes(wire.type) ? wire.type : 'server';
  const code = typeof wire.code === 'string' ? wire.code : undefined;
  return makeError(
    type as WebSocketErrorType,
    stringOr(wire.message, 'Unknown error'),
    code,
    wire.details,
    parseTimestamp(wire.timestamp),
  );
}

// Refusals that a retry with the same credentials cannot fix (decisions §2).
const AUTHENTICATION_CODES = new Set([
  'invalid_token',
  'token_expired',
  'not_authenticated',
  'user_mismatch',
  'forbidden',
]);

/**
 * A `connect_error` as a WebSocketError. A refusal by the server carries `err.data = {message, code}`:
 * token problems become `authentication`, the rest (`too_many_connections`, `banned`,
 * `project_not_found`) `connection`. Without data the transport failed: `network`.
 */
export function fromConnectError(err: Error & { data?: unknown; description?: unknown }): WebSocketError {
  if (isRecord(err.data)) {
    const code = typeof err.data.code === 'string' ? err.data.code : undefined;
    const type = code !== undefined && AUTHENTICATION_CODES.has(code) ? 'authentication' : 'connection';
    return makeError(type, stringOr(err.data.message, err.message), code, err.data);
  }
  const code = err.message === 'timeout' ? 'connect_timeout' : 'transport_error';
  return makeError('network', err.message || 'Connection failed', code);
}

/** The server's error events (decisions §3) as WebSocketErrors; `undefined` for any other event. */
export function fromServerErrorEvent(event: string, data: unknown): WebSocketError | undefined {
  const payload = isRecord(data) ? data : {};
  switch (event) {
    case 'error':
      return fromWireError(data);
    case 'validation_error':
      return makeError('validation', stringOr(payload.message, 'Validation failed'), 'validation_error', payload.details);
    case 'authentication_failed':
      return makeError(
        'authentication',
        stringOr(payload.message, 'Authentication failed'),
        stringOr(payload.code, 'authentication_failed'),
      );
    case 'rate_limited':
      // The server's acks type a rate-limit refusal as `validation`; the event is routed the same way.
      return makeError('validation', stringOr(payload.message, 'Rate limit exceeded'), 'rate_limited', {
        retry_after: payload.retry_after,
      });
    default:
      return undefined;
  }
}

export type ErrorRoute = (error: WebSocketError, namespace: string) => void;
export type ErrorRoutes = Record<WebSocketErrorType, ErrorRoute>;

/**
 * Routes each error type to a handler. The defaults log to the console, as the spec's; replace any of
 * them with the constructor's `routes` (show a login dialog on `authentication`, a banner on
 * `network`, ...) or override the protected methods in a subclass.
 */
export class WebSocketErrorHandler {
  private readonly routes: Partial<ErrorRoutes>;

  constructor(routes: Partial<ErrorRoutes> = {}) {
    this.routes = routes;
  }

  /** The spec's static entry point, on a default (console) handler. */
  static handle(error: WebSocketError, namespace: string): void {
    defaultHandler.handle(error, namespace);
  }

  handle(error: WebSocketError, namespace: string): void {
    const route = this.routes[error.type];
    if (route) {
      route(error, namespace);
      return;
    }
    switch (error.type) {
      case 'connection':
        this.handleConnectionError(error, namespace);
        break;
      case 'authentication':
        this.handleAuthError(error, namespace);
        break;
      case 'validation':
        this.handleValidationError(error, namespace);
        break;
      case 'server':
        this.handleServerError(error, namespace);
        break;
      case 'network':
        this.handleNetworkError(error, namespace);
        break;
    }
  }

  protected handleConnectionError(error: WebSocketError, namespace: string): void {
    console.warn(`Connection error on ${namespace}:`, error.message);
  }

  protected handleAuthError(error: WebSocketError, namespace: string): void {
    console.error(`Authentication error on ${namespace}:`, error.message);
  }

  protected handleValidationError(error: WebSocketError, namespace: string): void {
    console.error(`Validation error on ${namespace}:`, error.message);
  }

  protected handleServerError(error: WebSocketError, namespace: string): void {
    console.error(`Server error on ${namespace}:`, error.message);
  }

  protected handleNetworkError(error: WebSocketError, namespace: string): void {
    console.warn(`Network error on ${namespace}:`, error.message);
  }
}

const defaultHandler = new WebSocketErrorHandler();
