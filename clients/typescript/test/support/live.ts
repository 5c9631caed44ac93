import { randomUUID } from 'node:crypto';

import { afterEach, inject } from 'vitest';

import {
  WebSocketManager,
  type Namespace,
  type SubscriptionEventName,
  type SubscriptionEvents,
  type WebSocketManagerOptions,
} from '../../src/index.js';
import { mintToken, type Role } from './server.js';

const open: WebSocketManager[] = [];

afterEach(() => {
  for (const manager of open.splice(0)) manager.disconnect();
});

/** A fresh user name, so tests never share the per-user connection and rate limits. */
export const newUser = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

export interface LiveClientOptions extends WebSocketManagerOptions {
  role?: Role;
  user?: string;
  projects?: string[];
}

/** A manager on the shared live server with a token of its own user; disconnected after each test. */
export function liveClient(options: LiveClientOptions = {}): { manager: WebSocketManager; user: string; token: string } {
  const { role = 'member', user = newUser(role), projects = ['demo'], ...rest } = options;
  const token = typeof rest.token === 'string' ? rest.token : mintToken(inject('dataDir'), user, role, projects);
  const manager = new WebSocketManager({
    url: inject('serverUrl'),
    token,
    errorHandler: null,
    ...rest,
  });
  open.push(manager);
  return { manager, user, token };
}

/** Resolves with the next `${namespace}:${event}` payload (or rejects after `timeout` ms). */
export function nextEvent<E extends SubscriptionEventName>(
  manager: WebSocketManager,
  namespace: Namespace,
  event: E,
  timeout = 5000,
  accept: (data: SubscriptionEvents[E]) => boolean = () => true,
): Promise<SubscriptionEvents[E]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no ${namespace}:${event} within ${timeout} ms`));
    }, timeout);
    const unsubscribe = manager.subscribe(namespace, event, (data) => {
      if (!accept(data)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(data);
    });
  });
}

/** Every `${namespace}:${event}` payload from now on, in order. */
export function record<E extends SubscriptionEventName>(
  manager: WebSocketManager,
  namespace: Namespace,
  event: E,
): Array<SubscriptionEvents[E]> {
  const seen: Array<SubscriptionEvents[E]> = [];
  manager.subscribe(namespace, event, (data) => seen.push(data));
  return seen;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
