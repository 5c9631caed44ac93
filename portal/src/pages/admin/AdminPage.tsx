import { useState } from 'react';

import { AuditLog } from './AuditLog';
import { ConfigForm } from './ConfigForm';

const TABS = [
  { type: 'agent', label: 'Agents' },
  { type: 'system', label: 'System' },
  { type: 'security', label: 'Security' },
] as const;

export function AdminPage() {
  const [tab, setTab] = useState<(typeof TABS)[number]['type']>('system');
  return (
    <div className="page admin">
      <h1 className="page-title">Admin</h1>
      <div className="grid-admin">
        <section className="panel">
          <div role="tablist" aria-label="Configuration" className="tabs">
            {TABS.map((t) => (
              <button
                key={t.type}
                type="button"
                role="tab"
                id={`tab-${t.type}`}
                aria-selected={tab === t.type}
                aria-controls={`tabpanel-${t.type}`}
                onClick={() => setTab(t.type)}
                onKeyDown={(e) => {
                  const i = TABS.findIndex((x) => x.type === tab);
                  if (e.key === 'ArrowRight') setTab(TABS[(i + 1) % TABS.length]!.type);
                  if (e.key === 'ArrowLeft') setTab(TABS[(i + TABS.length - 1) % TABS.length]!.type);
                }}
              >
                {t.label}
              </button>
            ))}
          </div>
          <div role="tabpanel" id={`tabpanel-${tab}`} aria-labelledby={`tab-${tab}`}>
            <ConfigForm key={tab} configType={tab} />
          </div>
        </section>
        <AuditLog />
      </div>
    </div>
  );
}
