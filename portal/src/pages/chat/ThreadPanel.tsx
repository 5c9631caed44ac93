import { useCallback, useEffect, useState } from 'react';

import type { MessageReceivedEvent } from '@agent-portal/client';
import { chatNamespace } from '@agent-portal/client';
import { useWebSocketEvent } from '@agent-portal/client/react';

import { useSession } from '../../store/session';
import type { useChat } from '../../store/useChat';
import { useRequest } from '../../store/useRequest';
import type { OpenThread } from './ChatPage';
import { Composer } from './Composer';
import { MessageItem } from './MessageItem';

interface Props {
  project: string;
  thread: OpenThread;
  chat: ReturnType<typeof useChat>;
  canWrite: boolean;
  onThreadId: (threadId: string) => void;
  onClose: () => void;
}

export function ThreadPanel({ project, thread, chat, canWrite, onThreadId, onClose }: Props) {
  const request = useRequest();
  const { session } = useSession();
  const ns = chatNamespace(project);
  const [replies, setReplies] = useState<MessageReceivedEvent[]>([]);
  const parent = chat.messages.find((m) => m.message_id === thread.parentId);

  const load = useCallback(() => {
    if (!thread.threadId) return setReplies([]);
    request(ns, 'get_history', { thread_id: thread.threadId, limit: 100 })
      .then((page) => setReplies(page.messages))
      .catch(() => undefined);
  }, [request, ns, thread.threadId]);
  useEffect(load, [load]);

  useWebSocketEvent(ns, 'message_received', (m) => {
    if (m.thread_id && m.thread_id === thread.threadId) {
      setReplies((prev) => (prev.some((r) => r.message_id === m.message_id) ? prev : [...prev, m]));
    }
  });

  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (e.key === 'Escape') onClose();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);

  return (
    <aside className="thread" aria-label="Thread">
      <header className="panel-head">
        <h2>Thread</h2>
        <button type="button" className="link-button" onClick={onClose} aria-label="Close thread">
          ✕
        </button>
      </header>
      <div className="thread-body">
        {parent && <MessageItem project={project} message={parent} me={session.userId} canWrite={false} inThread />}
        <ul className="list thread-replies">
          {replies.map((m) => (
            <li key={m.message_id}>
              <MessageItem project={project} message={m} me={session.userId} canWrite={canWrite} inThread />
            </li>
          ))}
        </ul>
        {replies.length === 0 && <p className="muted small">No replies yet.</p>}
      </div>
      {canWrite && (
        <Composer
          project={project}
          allowed={[]}
          threadId={thread.threadId ?? thread.parentId}
          label="Reply"
          onSent={(reply) => {
            if (reply.thread_id && reply.thread_id !== thread.threadId) onThreadId(reply.thread_id);
          }}
        />
      )}
    </aside>
  );
}
