import { Panel } from '../../components/Panel';
import type { TDDState } from '../../lib/types';
import type { CycleView } from '../../store/monitoringReducer';

export const PHASES: { state: TDDState; label: string }[] = [
  { state: 'design', label: 'Design' },
  { state: 'test_red', label: 'Red' },
  { state: 'code_green', label: 'Green' },
  { state: 'refactor', label: 'Refactor' },
  { state: 'commit', label: 'Commit' },
];

export function PhaseTrack({ state }: { state: TDDState }) {
  const at = PHASES.findIndex((p) => p.state === state);
  return (
    <ol className="phase-track" aria-label={`Phase: ${PHASES[at]?.label ?? state}`}>
      {PHASES.map((p, i) => (
        <li key={p.state} className={`phase phase-${p.state} ${i < at ? 'done' : i === at ? 'now' : ''}`} aria-current={i === at ? 'step' : undefined}>
          {p.label}
        </li>
      ))}
    </ol>
  );
}

export function CycleList({ cycles, selected, onSelect }: { cycles: CycleView[]; selected?: string; onSelect: (id: string) => void }) {
  return (
    <Panel title={`TDD cycles (${cycles.length})`} id="cycles" className="cycles">
      {cycles.length === 0 && <p className="muted">No TDD cycles yet. Start a sprint to see them here.</p>}
      <ul className="list">
        {cycles.map((c) => (
          <li key={c.cycle_id}>
            <button
              type="button"
              className={`cycle ${c.cycle_id === selected ? 'selected' : ''}`}
              aria-pressed={c.cycle_id === selected}
              onClick={() => onSelect(c.cycle_id)}
              data-cycle={c.cycle_id}
              data-phase={c.state}
            >
              <span className="cycle-title">
                <span className="mono small">{c.story_id || c.cycle_id}</span> <span className="muted small">{c.project}</span>
              </span>
              <PhaseTrack state={c.state} />
            </button>
          </li>
        ))}
      </ul>
    </Panel>
  );
}
