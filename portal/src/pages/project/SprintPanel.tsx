import { Panel } from '../../components/Panel';
import { ProgressBar } from '../../components/ProgressBar';
import { time } from '../../lib/format';
import type { ProjectLive } from '../../store/projectReducer';

const PHASES = ['design', 'test_red', 'code_green', 'refactor', 'commit'] as const;

export function SprintPanel({ live }: { live: ProjectLive }) {
  const { sprint, progress } = live;
  const total = progress?.total_stories ?? sprint?.story_ids.length ?? 0;
  const cycles = Object.values(live.cycles);
  return (
    <Panel title="Sprint" id="sprint">
      {!sprint && !progress && <p className="muted">No sprint planned.</p>}
      {(sprint || progress) && (
        <>
          <p>
            <strong>{sprint?.goal ?? progress?.sprint_id}</strong> <span className="tag">{sprint?.status ?? 'active'}</span>
          </p>
          <ProgressBar value={progress?.completed_stories ?? 0} max={total} label="Sprint progress" tone="ok" />
          <p className="muted small" data-testid="sprint-numbers">
            {progress?.completed_stories ?? 0}/{total} done · {progress?.in_progress_stories ?? 0} in progress ·{' '}
            {progress?.failed_stories ?? 0} failed
            {progress && progress.completed_stories < total && ` · ETA ${time(progress.estimated_completion)}`}
          </p>
        </>
      )}
      {cycles.length > 0 && (
        <ul className="list cycles-mini">
          {cycles.map((c) => (
            <li key={c.cycle_id}>
              <span className="mono small">{c.story_id}</span>
              <span className="phases" aria-label={`phase ${c.current_state}`}>
                {PHASES.map((p) => (
                  <span key={p} className={`phase-dot ${p === c.current_state ? 'now' : PHASES.indexOf(p) < PHASES.indexOf(c.current_state) ? 'done' : ''}`} title={p} />
                ))}
              </span>
            </li>
          ))}
        </ul>
      )}
    </Panel>
  );
}
