import type { EmbedData } from '@agent-portal/client';

import { stripDemo } from '../lib/format';
import { DemoBadge } from './DemoBadge';

/** A command result as a card (`embed_data`, decisions §5). */
export function EmbedCard({ embed, failed }: { embed: EmbedData; failed?: boolean }) {
  const demo = [embed.description, ...(embed.fields ?? []).map((f) => f.value)].some((t) => t?.includes('[demo]'));
  return (
    <article className={`embed ${failed ? 'embed-failed' : ''}`} style={embed.color ? { borderLeftColor: embed.color } : undefined}>
      <header className="embed-title">
        {embed.title} <DemoBadge force={demo} />
      </header>
      {embed.description && <p className="embed-desc">{stripDemo(embed.description)}</p>}
      {(embed.fields ?? []).length > 0 && (
        <dl className="embed-fields">
          {(embed.fields ?? []).map((field, i) => (
            <div key={i} className={field.inline ? 'embed-field inline' : 'embed-field'}>
              <dt>{field.name}</dt>
              <dd>{stripDemo(field.value)}</dd>
            </div>
          ))}
        </dl>
      )}
      {embed.footer && <footer className="embed-footer">{embed.footer}</footer>}
    </article>
  );
}
