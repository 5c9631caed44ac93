import type { Namespace } from '@agent-portal/client';
import { useWebSocketManager } from '@agent-portal/client/react';

import { useConnection, type LinkStatus } from '../store/useConnection';
import { useNow } from '../store/useNow';

/** Always visible: is the page live, is it reconnecting (and when), and a button when it gave up. */
export function StatusBar({ namespaces }: { namespaces: Namespace[] }) {
  const manager = useWebSocketManager();
  const states = useConnection(namespaces);
  const now = useNow(500);
  const list = Object.entries(states);
  const failed = list.filter(([, s]) => s.kind === 'failed');
  const retrying = list.filter(([, s]) => s.kind === 'reconnecting') as [string, Extract<LinkStatus, { kind: 'reconnecting' }>][];
  const connecting = list.filter(([, s]) => s.kind === 'connecting');

  let kind = 'live';
  let text = 'Live';
  if (failed.length) {
    kind = 'failed';
    const first = failed[0]![1] as Extract<LinkStatus, { kind: 'failed' }>;
    text = `Disconnected: ${first.message}`;
  } else if (retrying.length) {
    kind = 'retrying';
    const [, s] = retrying[0]!;
    const secs = Math.max(0, Math.ceil((s.retryAt - now) / 1000));
    text = `Reconnecting (attempt ${s.attempt}) in ${secs}s`;
  } else if (connecting.length) {
    kind = 'connecting';
    text = 'Connecting…';
  }

  const reconnect = (): void => {
    for (const [ns, s] of list) if (s.kind !== 'connected') manager.reconnect(ns as Namespace);
  };

  return (
    <div className={`status status-${kind}`} role="status" aria-live="polite" data-connection={kind}>
      <span className="status-dot" aria-hidden="true" />
      <span className="status-text">{text}</span>
      {kind !== 'live' && kind !== 'connecting' && (
        <button type="button" className="link-button" onClick={reconnect}>
          Reconnect now
        </button>
      )}
    </div>
  );
}
