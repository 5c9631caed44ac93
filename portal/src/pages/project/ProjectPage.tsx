import { useProjectWebSocket } from '@agent-portal/client/react';

import { StateBadge } from '../../components/StateBadge';
import { can } from '../../lib/auth';
import { href } from '../../lib/router';
import { useSession } from '../../store/session';
import { useProjectLive } from '../../store/useProjectLive';
import { ApprovalQueue } from './ApprovalQueue';
import { BacklogPanel } from './BacklogPanel';
import { CommandsBar } from './CommandsBar';
import { SprintPanel } from './SprintPanel';
import { TaskList } from './TaskList';

export function ProjectPage({ project }: { project: string }) {
  const { error } = useProjectWebSocket(project); // joins: this user is present in the project
  const { live } = useProjectLive(project);
  const { session } = useSession();
  return (
    <div className="page project">
      <header className="page-head">
        <h1 className="page-title">{project}</h1>
        <StateBadge state={live.state} />
        {live.mode && <span className="tag">{live.mode}</span>}
        <span className="muted small" data-testid="online-users">
          online: {live.users.join(', ') || '—'}
        </span>
        <a className="button" href={href({ page: 'chat', project })}>
          Open chat
        </a>
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      <CommandsBar project={project} allowed={live.allowed} canRun={can(session, 'commands:run')} />
      <div className="grid-2">
        <ApprovalQueue project={project} approvals={live.approvals} canResolve={can(session, 'approvals:resolve')} />
        <SprintPanel live={live} />
        <TaskList tasks={live.tasks} />
        <BacklogPanel project={project} backlog={live.backlog} canEdit={can(session, 'commands:run')} />
      </div>
    </div>
  );
}
