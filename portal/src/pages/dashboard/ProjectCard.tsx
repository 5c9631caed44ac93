import { ProgressBar } from '../../components/ProgressBar';
import { StateBadge } from '../../components/StateBadge';
import type { ProjectSummary } from '../../lib/api';
import { STATE_COLOURS } from '../../lib/format';
import { href } from '../../lib/router';
import { useProjectLive } from '../../store/useProjectLive';

export function ProjectCard({ summary }: { summary: ProjectSummary }) {
  const { live } = useProjectLive(summary.name);
  const state = live.loaded ? live.state : summary.current_state;
  const active = Object.values(live.tasks).filter((t) => t.status === 'in_progress' || t.status === 'pending').length;
  const total = live.progress?.total_stories ?? live.sprint?.story_ids.length ?? 0;
  const done = live.progress?.completed_stories ?? 0;
  // Presence: the live list when this page has it, else the server's count.
  const online = Math.max(live.users.length, summary.active_users);
  return (
    <article className={`project-card accent-${STATE_COLOURS[state]}`} data-project={summary.name} aria-label={`Project ${summary.name}`}>
      <header>
        <h3>
          <a href={href({ page: 'project', project: summary.name })}>{summary.name}</a>
        </h3>
        <StateBadge state={state} />
      </header>
      <div className="card-sprint">
        {total > 0 ? (
          <>
            <span className="muted small">
              Sprint {done}/{total} stories
            </span>
            <ProgressBar value={done} max={total} label={`${summary.name} sprint progress`} tone="ok" />
          </>
        ) : (
          <span className="muted small">No sprint</span>
        )}
      </div>
      <dl className="card-stats">
        <div>
          <dt>Active tasks</dt>
          <dd data-testid="active-tasks">{active}</dd>
        </div>
        <div>
          <dt>Approvals</dt>
          <dd>{live.approvals.length}</dd>
        </div>
        <div>
          <dt>Online</dt>
          <dd>{online}</dd>
        </div>
      </dl>
      <footer className="card-links">
        <a href={href({ page: 'project', project: summary.name })}>Open</a>
        <a href={href({ page: 'chat', project: summary.name })}>Chat</a>
        {summary.external && <span className="tag">external</span>}
      </footer>
    </article>
  );
}
