import { useEffect, useState } from 'react';

import type { Namespace } from '@agent-portal/client';
import { useWebSocketManager } from '@agent-portal/client/react';

export type LinkStatus =
  | { kind: 'connecting' }
  | { kind: 'connected' }
  | { kind: 'reconnecting'; attempt: number; retryAt: number }
  | { kind: 'failed'; message: string };

/** The connection state of each namespace the current page uses, from the manager's notifications. */
export function useConnection(namespaces: Namespace[]): Record<string, LinkStatus> {
  const manager = useWebSocketManager();
  const key = namespaces.join('|');
  const [states, setStates] = useState<Record<string, LinkStatus>>({});

  useEffect(() => {
    const list = key.split('|').filter(Boolean) as Namespace[];
    const set = (ns: string, status: LinkStatus): void => setStates((prev) => ({ ...prev, [ns]: status }));
    setStates(
      Object.fromEntries(list.map((ns) => [ns, manager.isConnected(ns) ? { kind: 'connected' } : { kind: 'connecting' }])),
    );
    const offs = list.flatMap((ns) => [
      manager.subscribe(ns, 'connected', () => set(ns, { kind: 'connected' })),
      manager.subscribe(ns, 'disconnected', () => set(ns, { kind: 'connecting' })),
      manager.subscribe(ns, 'reconnecting', ({ attempt, delay }) =>
        set(ns, { kind: 'reconnecting', attempt, retryAt: Date.now() + delay }),
      ),
      manager.subscribe(ns, 'reconnect_failed', ({ error }) => set(ns, { kind: 'failed', message: error.message })),
      manager.subscribe(ns, 'error', (error) => {
        // A refused connect (bad token, forbidden project) is final until the user acts.
        if (!manager.isConnected(ns) && error.type !== 'network' && error.type !== 'connection') {
          set(ns, { kind: 'failed', message: error.message });
        }
      }),
    ]);
    return () => offs.forEach((off) => off());
  }, [manager, key]);

  return states;
}
