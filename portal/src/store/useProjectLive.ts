import { useCallback, useEffect, useReducer, useRef } from 'react';

import { projectNamespace } from '@agent-portal/client';
import { useWebSocketEvent, useWebSocketManager } from '@agent-portal/client/react';

import type { Snapshot } from '../lib/types';
import { emptyProject, projectReducer, type ProjectLive } from './projectReducer';

/**
 * A project's snapshot from `/project/{name}`, kept current by that namespace's events. The snapshot is
 * fetched again after a reconnect the server did not recover, and shortly after each state change (the
 * allowed commands follow the state).
 */
export function useProjectLive(project: string): { live: ProjectLive; reload: () => void } {
  const manager = useWebSocketManager();
  const ns = projectNamespace(project);
  const [live, dispatch] = useReducer(projectReducer, emptyProject);
  const timer = useRef<number | undefined>(undefined);

  const reload = useCallback(() => {
    manager
      .request(ns, 'get_snapshot', {})
      .then((snapshot) => dispatch({ type: 'snapshot', snapshot: snapshot as Snapshot }))
      .catch(() => undefined); // the connection status shows why
  }, [manager, ns]);

  const reloadSoon = useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(reload, 150);
  }, [reload]);

  useEffect(() => {
    reload(); // sent once connected; only a later, unrecovered reconnect needs another
    let first = !manager.isConnected(ns);
    const off = manager.subscribe(ns, 'connected', ({ recovered }) => {
      if (!recovered && !first) reload();
      first = false;
    });
    return () => {
      off();
      window.clearTimeout(timer.current);
    };
  }, [manager, ns, reload]);

  useWebSocketEvent(ns, 'state_change', (event) => {
    dispatch({ type: 'state_change', event });
    reloadSoon();
  });
  useWebSocketEvent(ns, 'task_update', (event) => dispatch({ type: 'task_update', event }));
  useWebSocketEvent(ns, 'approval_request', (event) => dispatch({ type: 'approval_request', event }));
  useWebSocketEvent(ns, 'approval_resolved', (event) => dispatch({ type: 'approval_resolved', event }));
  useWebSocketEvent(ns, 'sprint_progress', (event) => dispatch({ type: 'sprint_progress', event }));
  useWebSocketEvent(ns, 'backlog_updated', (event) => dispatch({ type: 'backlog_updated', event }));
  useWebSocketEvent(ns, 'tdd_cycle_started', (event) => dispatch({ type: 'tdd_cycle_started', event }));
  useWebSocketEvent(ns, 'tdd_state_change', (event) => dispatch({ type: 'tdd_state_change', event }));
  // This page's own join is not announced to it (user_joined skips the joiner): read presence again.
  useWebSocketEvent(ns, 'joined_project', reloadSoon);
  useWebSocketEvent(ns, 'user_joined', (event) => dispatch({ type: 'user_joined', event }));
  useWebSocketEvent(ns, 'user_left', (event) => dispatch({ type: 'user_left', event }));

  return { live, reload };
}
