import { drafts } from '../../store/useRunCommand';
import { href } from '../../lib/router';
import { catalogEntry } from '../chat/catalog';

/** The commands allowed in the current state; each opens the chat with the command ready to edit. */
export function CommandsBar({ project, allowed, canRun }: { project: string; allowed: string[]; canRun: boolean }) {
  return (
    <nav className="commands-bar" aria-label="Commands allowed now">
      <span className="muted small">Allowed now:</span>
      {allowed.map((command) => (
        <a
          key={command}
          className="chip"
          href={href({ page: 'chat', project })}
          title={catalogEntry(command)?.description ?? command}
          onClick={() => drafts.set(project, `${command} `)}
          aria-disabled={!canRun}
        >
          {command}
        </a>
      ))}
    </nav>
  );
}
