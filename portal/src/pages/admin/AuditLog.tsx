import { useEffect, useState } from 'react';

import type { UserActionEvent } from '@agent-portal/client';
import { useWebSocketEvent } from '@agent-portal/client/react';

import { Panel } from '../../components/Panel';
import { time } from '../../lib/format';
import { useRequest } from '../../store/useRequest';

const KEEP = 300;

export function AuditLog() {
  const request = useRequest();
  const [entries, setEntries] = useState<UserActionEvent[]>([]);
  const [filter, setFilter] = useState('');

  useEffect(() => {
    request('/admin', 'get_audit_log', { limit: 100 })
      .then(({ entries: list }) => setEntries((live) => [...live, ...list].slice(0, KEEP)))
      .catch(() => undefined);
  }, [request]);
  useWebSocketEvent('/admin', 'user_action', (entry) => setEntries((prev) => [entry, ...prev].slice(0, KEEP)));

  const shown = filter ? entries.filter((e) => `${e.user_id} ${e.action} ${e.resource}`.toLowerCase().includes(filter.toLowerCase())) : entries;
  return (
    <Panel
      title="Audit log"
      id="audit"
      className="audit"
      actions={
        <label>
          <span className="sr-only">Filter the audit log</span>
          <input type="search" placeholder="Filter…" value={filter} onChange={(e) => setFilter(e.target.value)} />
        </label>
      }
    >
      <div className="table-wrap" tabIndex={0}>
        <table data-testid="audit-log">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">User</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
              <th scope="col">Result</th>
              <th scope="col" className="wide-only">From</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((e, i) => (
              <tr key={`${e.timestamp}-${i}`} className={e.success ? '' : 'row-bad'}>
                <td className="mono small">{time(e.timestamp)}</td>
                <td>{e.user_id}</td>
                <td>{e.action}</td>
                <td className="mono small">{e.resource}</td>
                <td>{e.success ? 'ok' : (e.error ?? 'failed')}</td>
                <td className="muted small wide-only" title={e.user_agent ?? undefined}>
                  {e.ip_address}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Panel>
  );
}
