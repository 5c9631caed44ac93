import { useState } from 'react';

import { projectNamespace } from '@agent-portal/client';

import { Countdown } from '../../components/Countdown';
import { DemoBadge } from '../../components/DemoBadge';
import { Panel } from '../../components/Panel';
import type { Approval } from '../../lib/types';
import { useToasts } from '../../store/toasts';
import { errorMessage, useRequest } from '../../store/useRequest';

export function ApprovalQueue({ project, approvals, canResolve }: { project: string; approvals: Approval[]; canResolve: boolean }) {
  const request = useRequest();
  const { push } = useToasts();
  const [busy, setBusy] = useState<string | null>(null);

  const resolve = async (approval: Approval, approved: boolean): Promise<void> => {
    setBusy(approval.id);
    try {
      const result = await request(projectNamespace(project), 'resolve_approval', {
        request_id: approval.id,
        approved,
      });
      if (!result.success) push(result.error ?? 'Not resolved');
    } catch (error) {
      push(errorMessage(error));
    } finally {
      setBusy(null);
    }
  };

  return (
    <Panel title={`Approvals (${approvals.length})`} id="approvals" className="approvals">
      {approvals.length === 0 && <p className="muted">Nothing waits for approval.</p>}
      <ul className="list">
        {approvals.map((a) => (
          <li key={a.id} className="approval" data-approval={a.id}>
            <div className="approval-main">
              <strong>{a.task.agent_type}</strong> <span className="tag">{a.task.task_type ?? 'task'}</span>
              <DemoBadge text={JSON.stringify(a.task.context)} />
              <p className="approval-cmd">{a.task.command}</p>
              <p className="muted small">
                {a.reason} · <Countdown until={a.timeout_at} label="Expires in" />
              </p>
            </div>
            {canResolve && (
              <div className="approval-actions">
                <button type="button" className="primary" disabled={busy === a.id} onClick={() => resolve(a, true)} aria-label={`Approve ${a.task.command}`}>
                  Approve
                </button>
                <button type="button" className="danger" disabled={busy === a.id} onClick={() => resolve(a, false)} aria-label={`Reject ${a.task.command}`}>
                  Reject
                </button>
              </div>
            )}
          </li>
        ))}
      </ul>
    </Panel>
  );
}
