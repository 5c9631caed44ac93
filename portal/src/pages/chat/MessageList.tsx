import { useLayoutEffect, useRef } from 'react';

import type { useChat } from '../../store/useChat';
import { MessageItem } from './MessageItem';

type Chat = ReturnType<typeof useChat>;

interface Props {
  project: string;
  chat: Chat;
  me: string;
  canWrite: boolean;
  onOpenThread: (parentId: string) => void;
  onOpenThreadById: (threadId: string) => void;
}

/** The timeline: scrolls to the newest, loads older pages when scrolled to the top (infinite scroll). */
export function MessageList({ project, chat, me, canWrite, onOpenThread, onOpenThreadById }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const anchor = useRef<{ height: number; top: number } | null>(null);
  const stick = useRef(true);
  const knownThreads = new Set(Object.keys(chat.threads));
  // Thread replies live in their thread; those whose parent this page knows are not repeated here.
  const shown = chat.messages.filter((m) => !m.thread_id || !chat.threads[m.thread_id]?.parent_message_id);

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    if (anchor.current) {
      // Older messages were prepended: keep what the user was looking at in place.
      el.scrollTop = el.scrollHeight - anchor.current.height + anchor.current.top;
      anchor.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [chat.messages]);

  const onScroll = (): void => {
    const el = box.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
    if (el.scrollTop < 80 && chat.hasMore) {
      anchor.current = { height: el.scrollHeight, top: el.scrollTop };
      void chat.loadOlder();
    }
  };

  return (
    <div className="messages" ref={box} onScroll={onScroll} tabIndex={0} aria-label="Message history" data-testid="messages">
      {chat.hasMore ? (
        <button type="button" className="link-button load-older" onClick={() => void chat.loadOlder()}>
          Load older messages
        </button>
      ) : (
        !chat.loading && <p className="muted small history-start">Start of the conversation</p>
      )}
      {shown.map((m) => {
        const threadId = chat.threadOf[m.message_id];
        return (
          <MessageItem
            key={m.message_id}
            project={project}
            message={m}
            result={chat.results[m.message_id]}
            thread={threadId ? chat.threads[threadId] : undefined}
            orphanReply={!!m.thread_id && !knownThreads.has(m.thread_id)}
            me={me}
            canWrite={canWrite}
            onOpenThread={() => (m.thread_id ? onOpenThreadById(m.thread_id) : onOpenThread(m.message_id))}
          />
        );
      })}
    </div>
  );
}
