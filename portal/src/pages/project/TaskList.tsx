import { DemoBadge } from '../../components/DemoBadge';
import { Panel } from '../../components/Panel';
import { ProgressBar } from '../../components/ProgressBar';
import type { TaskView } from '../../store/projectReducer';

const ORDER: Record<string, number> = { in_progress: 0, pending: 1, failed: 2, completed: 3, cancelled: 4 };

export function TaskList({ tasks }: { tasks: Record<string, TaskView> }) {
  const list = Object.values(tasks).sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9) || b.updated - a.updated);
  const active = list.filter((t) => t.status === 'in_progress' || t.status === 'pending').length;
  return (
    <Panel title={`Tasks (${active} active)`} id="tasks">
      {list.length === 0 && <p className="muted">No tasks.</p>}
      <ul className="list tasks">
        {list.map((t) => (
          <li key={t.id} className={`task task-${t.status}`} data-task={t.id} data-status={t.status}>
            <div className="task-head">
              <strong>{t.agent_type}</strong>
              <span className="tag">{t.task_type}</span>
              <span className={`status-tag st-${t.status}`}>{t.status.replace('_', ' ')}</span>
              <DemoBadge text={t.command} />
              <span className="mono small task-pct">{t.progress}%</span>
            </div>
            <ProgressBar value={t.progress} label={`${t.agent_type} ${t.task_type}`} tone={t.status === 'failed' ? 'bad' : t.status === 'completed' ? 'ok' : 'info'} />
            {t.error && <p className="error small">{t.error}</p>}
          </li>
        ))}
      </ul>
    </Panel>
  );
}
