import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useInsertionEffect,
  useRef,
  useState,
  type DependencyList,
  type ReactNode,
} from 'react';

import type { ClientEventName, ClientEventsFor, SubscriptionEventName, SubscriptionEvents } from './events.js';
import { WebSocketManager } from './manager.js';
import { projectNamespace, type Namespace } from './namespaces.js';

const WebSocketContext = createContext<WebSocketManager | null>(null);

export interface WebSocketProviderProps {
  manager: WebSocketManager;
  children?: ReactNode;
}

/** Makes a WebSocketManager available to the hooks below it. */
export function WebSocketProvider({ manager, children }: WebSocketProviderProps): ReactNode {
  return createElement(WebSocketContext.Provider, { value: manager }, children);
}

/** The manager given explicitly, else the nearest WebSocketProvider's; throws when there is neither. */
export function useWebSocketManager(manager?: WebSocketManager): WebSocketManager {
  const fromContext = useContext(WebSocketContext);
  const resolved = manager ?? fromContext;
  if (!resolved) throw new Error('No WebSocketManager: render a <WebSocketProvider> or pass one to the hook');
  return resolved;
}

/**
 * Subscribes `callback` to `${namespace}:${event}` while mounted. The latest callback is always the one
 * called; the subscription is renewed when the namespace, the event or `dependencies` change.
 */
export function useWebSocketEvent<E extends SubscriptionEventName>(
  namespace: Namespace,
  event: E,
  callback: (data: SubscriptionEvents[E]) => void,
  dependencies: DependencyList = [],
  manager?: WebSocketManager,
): void {
  const resolved = useWebSocketManager(manager);
  const latest = useRef(callback);
  useInsertionEffect(() => {
    latest.current = callback;
  });
  useEffect(
    () => resolved.subscribe(namespace, event, (data) => latest.current(data)),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the spec's API: the caller lists extra deps
    [resolved, namespace, event, ...dependencies],
  );
}

export interface ProjectWebSocket {
  namespace: `/project/${string}`;
  connected: boolean;
  /** The message of the last error on the namespace, or null. */
  error: string | null;
  emit: <E extends ClientEventName<`/project/${string}`>>(
    event: E,
    data: ClientEventsFor<`/project/${string}`>[E],
  ) => void;
  request: <E extends ClientEventName<`/project/${string}`>>(
    event: E,
    data: ClientEventsFor<`/project/${string}`>[E],
  ) => Promise<unknown>;
}

/**
 * Connects to `/project/{name}`, joins the project on mount and leaves it on unmount (the spec's hook).
 * The join is sent once connected, and again after a reconnect the server did not recover (a new
 * session has no rooms); the leave only while connected (a closed session has left already).
 */
export function useProjectWebSocket(projectName: string, manager?: WebSocketManager): ProjectWebSocket {
  const resolved = useWebSocketManager(manager);
  const namespace = projectNamespace(projectName);
  const [connected, setConnected] = useState(() => resolved.isConnected(namespace));
  const [error, setError] = useState<string | null>(null);

  useWebSocketEvent(namespace, 'connected', () => {
    setConnected(true);
    setError(null);
  }, [], resolved);
  useWebSocketEvent(namespace, 'disconnected', () => setConnected(false), [], resolved);
  useWebSocketEvent(namespace, 'error', (err) => setError(err.message), [], resolved);

  useEffect(() => {
    const join = (): void => resolved.emit(namespace, 'join_project', { project_name: projectName });
    const unsubscribe = resolved.subscribe(namespace, 'connected', ({ recovered }) => {
      if (!recovered) join();
    });
    setConnected(resolved.isConnected(namespace));
    if (resolved.isConnected(namespace)) join();
    return () => {
      unsubscribe();
      if (resolved.isConnected(namespace)) {
        resolved.emit(namespace, 'leave_project', { project_name: projectName });
      }
    };
  }, [resolved, namespace, projectName]);

  const emit = useCallback<ProjectWebSocket['emit']>(
    (event, data) => resolved.emit(namespace, event, data),
    [resolved, namespace],
  );
  const request = useCallback<ProjectWebSocket['request']>(
    (event, data) => resolved.request(namespace, event, data),
    [resolved, namespace],
  );

  return { namespace, connected, error, emit, request };
}
