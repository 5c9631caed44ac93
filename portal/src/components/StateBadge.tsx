import { STATE_COLOURS, stateLabel } from '../lib/format';
import type { WorkflowState } from '../lib/types';

export function StateBadge({ state }: { state: WorkflowState }) {
  return (
    <span className={`state-badge state-${STATE_COLOURS[state] ?? 'gray'}`} data-state={state} title={state}>
      {stateLabel(state)}
    </span>
  );
}
