import { useCallback, useEffect, useReducer, useRef } from 'react';

import type { TestOutputEvent } from '@agent-portal/client';
import { projectNamespace } from '@agent-portal/client';
import { useWebSocketEvent, useWebSocketManager } from '@agent-portal/client/react';

import type { Snapshot } from '../lib/types';
import { emptyMonitoring, monitoringReducer, type MonitoringState } from './monitoringReducer';

/**
 * Everything /monitoring streams, seeded with each project's active TDD cycles. Test output is kept in
 * sequence: a gap (a missed event) is filled with `get_test_output {cycle_id, after_sequence}`.
 */
export function useMonitoring(projects: string[]): { state: MonitoringState; fetchOutput: (cycleId: string) => void } {
  const manager = useWebSocketManager();
  const [state, dispatch] = useReducer(monitoringReducer, emptyMonitoring);
  const latest = useRef(state);
  latest.current = state;
  const filling = useRef(new Set<string>());
  const again = useRef(new Set<string>()); // output arrived while a fill was in flight

  const fetchOutput = useCallback(
    (cycleId: string) => {
      if (filling.current.has(cycleId)) {
        again.current.add(cycleId);
        return;
      }
      filling.current.add(cycleId);
      const cycle = latest.current.cycles[cycleId];
      manager
        .request('/monitoring', 'get_test_output', { cycle_id: cycleId, after_sequence: cycle?.lastSeq ?? 0 })
        .then((reply) => {
          const { lines, has_more } = reply as { lines: TestOutputEvent[]; has_more: boolean };
          dispatch({ type: 'output', cycle_id: cycleId, project: cycle?.project ?? lines[0]?.project_name ?? '', lines });
          filling.current.delete(cycleId);
          if (has_more || again.current.delete(cycleId)) fetchOutput(cycleId);
        })
        .catch(() => filling.current.delete(cycleId));
    },
    [manager],
  );

  const key = projects.join('|');
  useEffect(() => {
    for (const project of key.split('|').filter(Boolean)) {
      manager
        .request(projectNamespace(project), 'get_snapshot', {})
        .then((s) => dispatch({ type: 'seed', project, cycles: (s as Snapshot).active_tdd_cycles }))
        .catch(() => undefined);
    }
  }, [manager, key]);

  useWebSocketEvent('/monitoring', 'agent_activity', (event) => dispatch({ type: 'agent_activity', event }));
  useWebSocketEvent('/monitoring', 'tdd_cycle_started', (event) => dispatch({ type: 'tdd_cycle_started', event }));
  useWebSocketEvent('/monitoring', 'tdd_state_change', (event) => dispatch({ type: 'tdd_state_change', event }));
  useWebSocketEvent('/monitoring', 'test_output', (event) => {
    const cycle = latest.current.cycles[event.cycle_id];
    const last = cycle?.lastSeq ?? 0;
    // Missed some (or a fill is running): ask the server for everything after what we have.
    if (event.sequence_number > last + 1 || filling.current.has(event.cycle_id)) fetchOutput(event.cycle_id);
    else dispatch({ type: 'output', cycle_id: event.cycle_id, project: event.project_name, lines: [event] });
  });

  return { state, fetchOutput };
}
