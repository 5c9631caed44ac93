import type { ClientEvents, ServerEvents } from './generated/protocol.js';
import type { WebSocketError } from './errors.js';
import type { KindOf, Namespace } from './namespaces.js';

export interface ConnectedNotification {
  namespace: string;
  /** True when the server restored the session (connection state recovery, decisions §7). */
  recovered: boolean;
}

export interface DisconnectedNotification {
  namespace: string;
  reason: string;
}

export interface ReconnectingNotification {
  namespace: string;
  /** 1 for the first retry. */
  attempt: number;
  /** Milliseconds until the retry, from `ReconnectionManager.calculateDelay`. */
  delay: number;
}

export interface ReconnectFailedNotification {
  namespace: string;
  attempts: number;
  error: WebSocketError;
}

/**
 * What `subscribe` delivers for `${namespace}:${event}`: every server event, plus the manager's own
 * notifications. `error` carries every error on the namespace as a WebSocketError: the server's `error`,
 * `validation_error`, `authentication_failed` and `rate_limited` events, and refused or failed connects.
 */
export interface SubscriptionEvents extends Omit<ServerEvents, 'error'> {
  error: WebSocketError;
  connected: ConnectedNotification;
  disconnected: DisconnectedNotification;
  reconnecting: ReconnectingNotification;
  reconnect_failed: ReconnectFailedNotification;
}

export type SubscriptionEventName = keyof SubscriptionEvents & string;

/** The events a client may send on namespace `N`, with their payloads. */
export type ClientEventsFor<N extends Namespace> = ClientEvents[KindOf<N>];

export type ClientEventName<N extends Namespace> = keyof ClientEventsFor<N> & string;
