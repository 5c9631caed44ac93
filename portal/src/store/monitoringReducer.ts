// The monitoring page's state: agent activity, TDD cycles and their test output (pure).
import type {
  AgentActivityEvent,
  CodeMetrics,
  TDDCycleStartedEvent,
  TDDStateChangeEvent,
  TestOutputEvent,
  TestResult,
} from '@agent-portal/client';

import type { CycleSummary, TDDState } from '../lib/types';

export interface OutputLine {
  seq: number;
  type: TestOutputEvent['output_type'];
  text: string;
}

export interface CycleView {
  cycle_id: string;
  project: string;
  story_id: string;
  state: TDDState;
  started_at: string;
  phases: { state: TDDState; at: string; duration?: number }[];
  results: TestResult[];
  metrics?: CodeMetrics;
  lines: OutputLine[];
  lastSeq: number;
}

export interface MonitoringState {
  activity: AgentActivityEvent[];
  cycles: Record<string, CycleView>;
}

export const emptyMonitoring: MonitoringState = { activity: [], cycles: {} };

export type MonitoringAction =
  | { type: 'seed'; project: string; cycles: CycleSummary[] }
  | { type: 'agent_activity'; event: AgentActivityEvent }
  | { type: 'tdd_cycle_started'; event: TDDCycleStartedEvent }
  | { type: 'tdd_state_change'; event: TDDStateChangeEvent }
  | { type: 'output'; cycle_id: string; project: string; lines: TestOutputEvent[] };

const KEEP_ACTIVITY = 200;
const KEEP_LINES = 2000;

function newCycle(cycle_id: string, project: string, story_id: string, state: TDDState, at: string): CycleView {
  return { cycle_id, project, story_id, state, started_at: at, phases: [{ state, at }], results: [], lines: [], lastSeq: 0 };
}

/** Output events in sequence order, without duplicates; content may hold several lines. */
function addLines(cycle: CycleView, events: TestOutputEvent[]): CycleView {
  const fresh = events.filter((e) => e.sequence_number > cycle.lastSeq).sort((a, b) => a.sequence_number - b.sequence_number);
  if (!fresh.length) return cycle;
  const lines = [...cycle.lines];
  let lastSeq = cycle.lastSeq;
  for (const e of fresh) {
    if (e.sequence_number <= lastSeq) continue;
    lastSeq = e.sequence_number;
    for (const text of e.content.replace(/\n$/, '').split('\n')) lines.push({ seq: e.sequence_number, type: e.output_type, text });
  }
  return { ...cycle, lines: lines.slice(-KEEP_LINES), lastSeq };
}

export function monitoringReducer(state: MonitoringState, action: MonitoringAction): MonitoringState {
  switch (action.type) {
    case 'seed': {
      const cycles = { ...state.cycles };
      for (const c of action.cycles) {
        cycles[c.cycle_id] ??= newCycle(c.cycle_id, action.project, c.story_id, c.current_state, c.started_at);
      }
      return { ...state, cycles };
    }
    case 'agent_activity':
      return { ...state, activity: [action.event, ...state.activity].slice(0, KEEP_ACTIVITY) };
    case 'tdd_cycle_started': {
      const e = action.event;
      if (state.cycles[e.cycle_id]) return state;
      return { ...state, cycles: { ...state.cycles, [e.cycle_id]: newCycle(e.cycle_id, e.project_name, e.story_id, 'design', e.timestamp) } };
    }
    case 'tdd_state_change': {
      const e = action.event;
      const prev = state.cycles[e.cycle_id] ?? newCycle(e.cycle_id, e.project_name, '', e.old_state, e.timestamp);
      const phases = [...prev.phases];
      const last = phases.at(-1);
      if (last) phases[phases.length - 1] = { ...last, duration: e.phase_duration ?? undefined };
      phases.push({ state: e.new_state, at: e.timestamp });
      const cycle: CycleView = {
        ...prev,
        state: e.new_state,
        phases,
        results: e.test_results?.length ? e.test_results : prev.results,
        metrics: e.code_metrics ?? prev.metrics,
      };
      return { ...state, cycles: { ...state.cycles, [e.cycle_id]: cycle } };
    }
    case 'output': {
      const prev = state.cycles[action.cycle_id] ?? newCycle(action.cycle_id, action.project, '', 'design', new Date().toISOString());
      const next = addLines(prev, action.lines);
      return next === prev ? state : { ...state, cycles: { ...state.cycles, [action.cycle_id]: next } };
    }
  }
}
