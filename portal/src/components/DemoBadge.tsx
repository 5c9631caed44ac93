import { isDemo } from '../lib/format';

/** Shown next to anything the demo agents produced (their text carries `[demo]`). */
export function DemoBadge({ text, force }: { text?: string | null; force?: boolean }) {
  if (!force && !isDemo(text)) return null;
  return (
    <span className="demo-badge" title="Produced by a demo agent, not real work">
      demo
    </span>
  );
}
