import type { CommandResultEvent, MessageReceivedEvent } from '@agent-portal/client';
import { chatNamespace } from '@agent-portal/client';

import { DemoBadge } from '../../components/DemoBadge';
import { EmbedCard } from '../../components/EmbedCard';
import { attachmentHref } from '../../lib/api';
import { bytes, stripDemo, time } from '../../lib/format';
import { useSession } from '../../store/session';
import type { ThreadInfo } from '../../store/useChat';
import { useToasts } from '../../store/toasts';
import { errorMessage, useRequest } from '../../store/useRequest';

const QUICK_REACTIONS = ['👍', '🎉', '👀'];

interface Props {
  project: string;
  message: MessageReceivedEvent;
  result?: CommandResultEvent;
  thread?: ThreadInfo;
  orphanReply?: boolean;
  me: string;
  canWrite: boolean;
  inThread?: boolean;
  onOpenThread?: () => void;
}

export function MessageItem({ project, message: m, result, thread, orphanReply, me, canWrite, inThread, onOpenThread }: Props) {
  const request = useRequest();
  const { push } = useToasts();
  const { session } = useSession();
  const failed = m.type === 'response' && m.embed_data?.color?.toLowerCase() === '#c62828';

  const toggle = (emoji: string): void => {
    const mine = m.reactions?.find((r) => r.emoji === emoji)?.user_ids.includes(me);
    request(chatNamespace(project), mine ? 'remove_reaction' : 'add_reaction', { message_id: m.message_id, emoji }).catch((e) =>
      push(errorMessage(e)),
    );
  };

  return (
    <article className={`msg msg-${m.type}`} data-message={m.message_id} data-type={m.type} aria-label={`${m.user_id} at ${time(m.timestamp)}`}>
      <header className="msg-head">
        <strong className="msg-user">{m.user_id}</strong>
        {m.type === 'command' && <span className="tag">command</span>}
        <DemoBadge text={m.content} />
        <time className="muted small" dateTime={m.timestamp}>
          {time(m.timestamp)}
        </time>
        {result && (
          <span className={`result-tag ${result.success ? 'ok' : 'bad'}`} title={result.error ?? undefined}>
            {result.success ? '✓' : '✗'} {Math.round(result.execution_time)} ms
          </span>
        )}
        {orphanReply && !inThread && <span className="tag">thread reply</span>}
      </header>
      {m.embed_data ? (
        <EmbedCard embed={m.embed_data} failed={failed} />
      ) : (
        <p className={`msg-text ${m.type === 'command' ? 'mono' : ''}`}>{stripDemo(m.content)}</p>
      )}
      {result && !result.success && result.error && !m.embed_data && <p className="error small">{result.error}</p>}
      {m.attachments && m.attachments.length > 0 && (
        <ul className="attachments">
          {m.attachments.map((a) => (
            <li key={a.id}>
              <a href={attachmentHref(a.url, session.token)} target="_blank" rel="noreferrer">
                📎 {a.name}
              </a>{' '}
              <span className="muted small">{bytes(a.size)}</span>
            </li>
          ))}
        </ul>
      )}
      <footer className="msg-foot">
        {m.reactions?.map((r) => (
          <button
            key={r.emoji}
            type="button"
            className={`reaction ${r.user_ids.includes(me) ? 'mine' : ''}`}
            onClick={() => canWrite && toggle(r.emoji)}
            aria-pressed={r.user_ids.includes(me)}
            aria-label={`${r.emoji} ${r.count}: ${r.user_ids.join(', ')}`}
            disabled={!canWrite}
          >
            {r.emoji} {r.count}
          </button>
        ))}
        {!inThread && onOpenThread && (thread || canWrite || orphanReply) && (
          <button type="button" className="link-button small" onClick={onOpenThread}>
            {thread && thread.message_count > 0 ? `${thread.message_count} ${thread.message_count === 1 ? 'reply' : 'replies'}` : orphanReply ? 'Open thread' : 'Reply in thread'}
          </button>
        )}
        {canWrite && (
          <span className="react-add">
            {QUICK_REACTIONS.filter((e) => !m.reactions?.some((r) => r.emoji === e)).map((emoji) => (
              <button key={emoji} type="button" className="reaction ghost" onClick={() => toggle(emoji)} aria-label={`React ${emoji}`}>
                {emoji}
              </button>
            ))}
          </span>
        )}
      </footer>
    </article>
  );
}
