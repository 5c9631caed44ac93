import { useCallback } from 'react';

import type { ClientEventName, ClientEventsFor, Namespace } from '@agent-portal/client';
import { useWebSocketManager } from '@agent-portal/client/react';

import type { Reply } from '../lib/types';

/** `manager.request` with the ack's `data` typed per event (the generated types leave replies open). */
export function useRequest() {
  const manager = useWebSocketManager();
  return useCallback(
    <N extends Namespace, E extends ClientEventName<N>>(namespace: N, event: E, data: ClientEventsFor<N>[E]): Promise<Reply<E>> =>
      manager.request(namespace, event, data) as Promise<Reply<E>>,
    [manager],
  );
}

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === 'string' ? error : 'Something went wrong';
