import { Manager, type ManagerOptions, type Socket } from 'socket.io-client';

import {
  fromConnectError,
  fromServerErrorEvent,
  fromWireError,
  makeError,
  WebSocketErrorHandler,
  WebSocketRequestError,
  type WebSocketError,
} from './errors.js';
import type { ClientEventName, ClientEventsFor, SubscriptionEventName, SubscriptionEvents } from './events.js';
import type { Namespace } from './namespaces.js';
import { ReconnectionManager, type ReconnectionConfig } from './reconnection.js';

export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface WebSocketManagerOptions {
  /** The server's base URL, e.g. `https://portal.example.com`. Default: the page's origin, in a browser. */
  url?: string;
  /** The access token, or a function asked at every (re)connect so a refreshed token is used. */
  token?: TokenSource;
  /** Default `/socket.io`. */
  path?: string;
  /** Default `['websocket', 'polling']`, as the spec. */
  transports?: ManagerOptions['transports'];
  /** Milliseconds to open the connection before a `connect_error` (default 5000). */
  timeout?: number;
  /** Milliseconds `request` waits for the server's ack (default 10000). */
  ackTimeout?: number;
  /** The backoff, or a ReconnectionManager of your own, or `false` for no automatic reconnection. */
  reconnection?: Partial<ReconnectionConfig> | ReconnectionManager | false;
  /** Where errors are routed (default: a console handler); `null` to only notify `:error` subscribers. */
  errorHandler?: WebSocketErrorHandler | null;
  /** Passed to socket.io-client's Manager (e.g. `extraHeaders`, `withCredentials`). */
  managerOptions?: Partial<ManagerOptions>;
}

export interface RequestOptions {
  /** Milliseconds to wait for the ack; default the manager's `ackTimeout`. */
  timeout?: number;
  /**
   * How often a request refused with `rate_limited` is sent again, each time after the server's
   * `retry_after` (at most 60 s); default 2. A ban (`banned`) is never retried.
   */
  rateLimitRetries?: number;
}

const MAX_RETRY_AFTER_MS = 60_000;

function retryAfter(error: unknown): number | undefined {
  if (!(error instanceof WebSocketRequestError) || error.code !== 'rate_limited') return undefined;
  const details = error.details as { retry_after?: unknown } | undefined;
  const wait = typeof details?.retry_after === 'number' ? details.retry_after : 1000;
  return Math.min(Math.max(wait, 0), MAX_RETRY_AFTER_MS);
}

type Callback = (data: never) => void;

const SERVER_ERROR_EVENTS = new Set(['error', 'validation_error', 'authentication_failed', 'rate_limited']);
// A refused connect that retrying cannot fix is not retried (decisions §2 codes).
const RETRYABLE_REFUSALS = new Set(['too_many_connections']);

function defaultUrl(): string {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (origin && origin !== 'null') return origin;
  throw new TypeError('WebSocketManager needs a `url` option outside a browser page');
}

/**
 * One connection to an agent-portal server, multiplexing a Socket.IO socket per namespace.
 *
 * Subscribers are keyed `${namespace}:${event}` and fed by `onAny`; the manager adds `connected`,
 * `disconnected`, `error`, `reconnecting` and `reconnect_failed` notifications. socket.io-client's own
 * reconnection is off: the ReconnectionManager schedules every retry.
 */
export class WebSocketManager {
  readonly reconnection: ReconnectionManager | undefined;
  private readonly io: Manager;
  private readonly sockets = new Map<string, Socket>();
  private readonly subscriptions = new Map<string, Set<Callback>>();
  // Requests waiting for an ack, per namespace, so a connect that fails for good fails them at once.
  private readonly pending = new Map<string, Set<(error: WebSocketError) => void>>();
  // Why a namespace is down for good (refused, or reconnection gave up), until `reconnect`.
  private readonly failures = new Map<string, WebSocketError>();
  private readonly token: TokenSource | undefined;
  private readonly ackTimeout: number;
  private readonly errorHandler: WebSocketErrorHandler | null;

  constructor(options: WebSocketManagerOptions = {}) {
    this.token = options.token;
    this.ackTimeout = options.ackTimeout ?? 10000;
    this.errorHandler = options.errorHandler === undefined ? new WebSocketErrorHandler() : options.errorHandler;
    if (options.reconnection instanceof ReconnectionManager) this.reconnection = options.reconnection;
    else if (options.reconnection !== false) this.reconnection = new ReconnectionManager(options.reconnection);
    this.io = new Manager(options.url ?? defaultUrl(), {
      path: options.path ?? '/socket.io',
      transports: options.transports ?? ['websocket', 'polling'],
      timeout: options.timeout ?? 5000,
      ...options.managerOptions,
      reconnection: false,
      autoConnect: false,
    });
  }

  /** The namespace's socket, connecting it first if needed. */
  connect(namespace: Namespace = '/portal'): Socket {
    const existing = this.sockets.get(namespace);
    if (existing) return existing;
    const socket = this.io.socket(namespace, {
      auth: (send: (data: object) => void) => {
        void this.authPayload().then(send);
      },
    });
    this.setupSocketListeners(socket, namespace);
    this.sockets.set(namespace, socket);
    socket.connect();
    return socket;
  }

  /** Forgets failed attempts and connects again now (after `reconnect_failed`, or to retry a refusal). */
  reconnect(namespace: Namespace): Socket {
    this.reconnection?.resetAttempts(namespace);
    this.failures.delete(namespace);
    const socket = this.connect(namespace);
    if (!socket.connected) socket.connect();
    return socket;
  }

  isConnected(namespace: Namespace): boolean {
    return this.sockets.get(namespace)?.connected ?? false;
  }

  namespaces(): string[] {
    return [...this.sockets.keys()];
  }

  subscribe<E extends SubscriptionEventName>(
    namespace: Namespace,
    event: E,
    callback: (data: SubscriptionEvents[E]) => void,
  ): () => void {
    const key = `${namespace}:${event}`;
    let subscribers = this.subscriptions.get(key);
    if (!subscribers) {
      subscribers = new Set();
      this.subscriptions.set(key, subscribers);
    }
    const entry = callback as Callback;
    subscribers.add(entry);
    this.connect(namespace);
    return () => {
      const current = this.subscriptions.get(key);
      if (!current) return;
      current.delete(entry);
      if (current.size === 0) this.subscriptions.delete(key);
    };
  }

  /** Sends an event without waiting for a reply. */
  emit<N extends Namespace, E extends ClientEventName<N>>(
    namespace: N,
    event: E,
    data: ClientEventsFor<N>[E],
  ): void {
    this.connect(namespace).emit(event, data);
  }

  /**
   * Sends an event with an ack: resolves the server's `{ok: true, data}` with `data`, rejects with a
   * WebSocketRequestError on `{ok: false, error}`, when no reply comes in time, on a disconnect, and
   * at once while the namespace is refused or reconnection has given up.
   */
  async request<N extends Namespace, E extends ClientEventName<N>>(
    namespace: N,
    event: E,
    data: ClientEventsFor<N>[E],
    options: RequestOptions = {},
  ): Promise<unknown> {
    // Several tabs of one user share its event budget (decisions §8): a refusal says when to retry.
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.requestOnce(namespace, event, data, options);
      } catch (error) {
        const wait = retryAfter(error);
        if (wait === undefined || attempt >= (options.rateLimitRetries ?? 2)) throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  private requestOnce<N extends Namespace, E extends ClientEventName<N>>(
    namespace: N,
    event: E,
    data: ClientEventsFor<N>[E],
    options: RequestOptions,
  ): Promise<unknown> {
    const socket = this.connect(namespace);
    const timeout = options.timeout ?? this.ackTimeout;
    return new Promise((resolve, reject) => {
      const failure = this.failures.get(namespace);
      if (failure) {
        reject(new WebSocketRequestError(failure, namespace, event));
        return;
      }
      let waiting = this.pending.get(namespace);
      if (!waiting) {
        waiting = new Set();
        this.pending.set(namespace, waiting);
      }
      const pending = waiting;
      const fail = (error: WebSocketError): void => {
        pending.delete(fail);
        reject(new WebSocketRequestError(error, namespace, event));
      };
      pending.add(fail);
      socket.timeout(timeout).emit(event, data, (err: Error | null, ack: unknown) => {
        if (!pending.has(fail)) return; // already failed with the namespace
        pending.delete(fail);
        if (err) {
          const timedOut = err.message === 'operation has timed out';
          const message = timedOut ? `No reply to ${event} within ${timeout} ms` : err.message;
          fail(makeError('network', message, timedOut ? 'ack_timeout' : 'disconnected'));
          return;
        }
        const reply = (typeof ack === 'object' && ack !== null ? ack : {}) as {
          ok?: unknown;
          data?: unknown;
          error?: unknown;
        };
        if (reply.ok === true) resolve(reply.data);
        else if (reply.ok === false) fail(fromWireError(reply.error));
        else fail(makeError('server', `Malformed reply to ${event}`, 'malformed_ack', ack));
      });
    });
  }

  /** Closes one namespace, or all of them. Subscriptions stay, for a later `connect`. */
  disconnect(namespace?: Namespace): void {
    const namespaces = namespace === undefined ? [...this.sockets.keys()] : [namespace];
    for (const name of namespaces) {
      const socket = this.sockets.get(name);
      if (!socket) continue;
      this.sockets.delete(name);
      this.reconnection?.resetAttempts(name);
      this.failures.delete(name);
      socket.disconnect();
      socket.offAny();
      socket.removeAllListeners();
      this.failPending(socket, name, makeError('connection', `Disconnected from ${name}`, 'client_disconnect'));
    }
  }

  private async authPayload(): Promise<Record<string, unknown>> {
    const token = typeof this.token === 'function' ? await this.token() : this.token;
    return token === undefined ? { recovery: true } : { token, recovery: true };
  }

  private setupSocketListeners(socket: Socket, namespace: string): void {
    socket.on('connect', () => {
      this.reconnection?.resetAttempts(namespace);
      this.failures.delete(namespace);
      this.notifySubscribers(`${namespace}:connected`, { namespace, recovered: socket.recovered === true });
    });

    socket.on('disconnect', (reason) => {
      this.notifySubscribers(`${namespace}:disconnected`, { namespace, reason });
      if (reason !== 'io client disconnect') this.scheduleReconnect(socket, namespace);
    });

    socket.on('connect_error', (err: Error & { data?: unknown }) => {
      const error = fromConnectError(err);
      this.reportError(namespace, error);
      const code = error.code ?? '';
      // An expired token is worth a retry when the token source can hand out a fresh one.
      const retryable = RETRYABLE_REFUSALS.has(code) || (code === 'token_expired' && typeof this.token === 'function');
      const refusedForGood = error.type !== 'network' && !retryable;
      if (refusedForGood) this.fail(socket, namespace, error);
      else this.scheduleReconnect(socket, namespace);
    });

    socket.onAny((event: string, data: unknown) => {
      if (SERVER_ERROR_EVENTS.has(event)) {
        const error = fromServerErrorEvent(event, data);
        if (error) this.reportError(namespace, error);
      }
      // `error` subscribers receive the WebSocketError form, reported above.
      if (event !== 'error') this.notifySubscribers(`${namespace}:${event}`, data);
    });
  }

  private scheduleReconnect(socket: Socket, namespace: string): void {
    const reconnection = this.reconnection;
    if (!reconnection || this.sockets.get(namespace) !== socket) return;
    if (!reconnection.shouldReconnect(namespace)) {
      const attempts = reconnection.attempts(namespace);
      const error = makeError(
        'connection',
        `Could not reconnect to ${namespace} after ${attempts} attempts`,
        'reconnect_failed',
        { attempts },
      );
      // Stop hearing the shared connection's failures; `reconnect()` subscribes again.
      socket.disconnect();
      this.fail(socket, namespace, error);
      this.reportError(namespace, error);
      this.notifySubscribers(`${namespace}:reconnect_failed`, { namespace, attempts, error });
      return;
    }
    const schedule = reconnection.schedule(namespace, () => {
      if (this.sockets.get(namespace) === socket && !socket.connected) socket.connect();
    });
    if (schedule) this.notifySubscribers(`${namespace}:reconnecting`, schedule);
  }

  /** The namespace is down until `reconnect`: fail what waits on it, and what would wait. */
  private fail(socket: Socket, namespace: string, error: WebSocketError): void {
    this.failures.set(namespace, error);
    this.failPending(socket, namespace, error);
  }

  private failPending(socket: Socket, namespace: string, error: WebSocketError): void {
    // Emits buffered for a connect that will not come must not be sent by a later one.
    socket.sendBuffer = [];
    const waiting = this.pending.get(namespace);
    this.pending.delete(namespace);
    for (const fail of waiting ?? []) fail(error);
  }

  private reportError(namespace: string, error: WebSocketError): void {
    this.errorHandler?.handle(error, namespace);
    this.notifySubscribers(`${namespace}:error`, error);
  }

  private notifySubscribers(key: string, data: unknown): void {
    const subscribers = this.subscriptions.get(key);
    if (!subscribers) return;
    for (const callback of [...subscribers]) {
      try {
        (callback as (data: unknown) => void)(data);
      } catch (error) {
        // One failing subscriber must not starve the others; rethrow where it stays visible.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
