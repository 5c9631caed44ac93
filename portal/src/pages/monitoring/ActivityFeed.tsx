import type { AgentActivityEvent } from '@agent-portal/client';

import { Panel } from '../../components/Panel';
import { shortDuration, time } from '../../lib/format';

export function ActivityFeed({ activity }: { activity: AgentActivityEvent[] }) {
  return (
    <Panel title="Agent activity" id="activity" className="activity">
      {activity.length === 0 && <p className="muted">Waiting for agents…</p>}
      <ol className="list feed" aria-live="polite" data-testid="activity">
        {activity.slice(0, 60).map((a, i) => (
          <li key={`${a.timestamp}-${i}`} className="feed-item">
            <time className="muted small mono" dateTime={a.timestamp}>
              {time(a.timestamp)}
            </time>{' '}
            <strong>{a.agent_type}</strong> {a.action.replace(/_/g, ' ')} <span className={`status-tag st-${a.status}`}>{a.status}</span>{' '}
            <span className="muted small">
              {a.project_name}
              {a.duration != null && ` · ${shortDuration(a.duration)}`}
            </span>
            {a.error && <p className="error small">{a.error}</p>}
          </li>
        ))}
      </ol>
    </Panel>
  );
}
