import { useState, type FormEvent } from 'react';

import type { Story } from '@agent-portal/client';

import { DemoBadge } from '../../components/DemoBadge';
import { Panel } from '../../components/Panel';
import { stripDemo } from '../../lib/format';
import { useRunCommand } from '../../store/useRunCommand';

const quote = (text: string): string => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export function BacklogPanel({ project, backlog, canEdit }: { project: string; backlog: Story[]; canEdit: boolean }) {
  const run = useRunCommand(project);
  const [title, setTitle] = useState('');

  const add = (event: FormEvent): void => {
    event.preventDefault();
    if (!title.trim()) return;
    void run(`/backlog add_story ${quote(title.trim())}`);
    setTitle('');
  };

  return (
    <Panel title={`Backlog (${backlog.length})`} id="backlog">
      {backlog.length === 0 && <p className="muted">The backlog is empty.</p>}
      <ol className="list backlog">
        {backlog.map((story) => (
          <li key={story.id} data-story={story.id}>
            <div className="story-main">
              <span className="mono small">{story.id}</span> <strong>{story.title}</strong> <DemoBadge text={story.description} />
              {story.description && <p className="muted small">{stripDemo(story.description)}</p>}
            </div>
            <label className="priority">
              <span className="sr-only">Priority of {story.title}</span>
              <select
                value={story.priority}
                disabled={!canEdit}
                onChange={(e) => void run(`/backlog prioritize ${story.id} ${e.target.value}`)}
              >
                {[1, 2, 3, 4, 5].map((p) => (
                  <option key={p} value={p}>
                    P{p}
                  </option>
                ))}
              </select>
            </label>
          </li>
        ))}
      </ol>
      {canEdit && (
        <form className="inline-form" onSubmit={add}>
          <label className="grow">
            <span className="sr-only">New story</span>
            <input value={title} onChange={(e) => setTitle(e.target.value)} placeholder="Add a story…" maxLength={500} />
          </label>
          <button type="submit">Add</button>
        </form>
      )}
    </Panel>
  );
}
