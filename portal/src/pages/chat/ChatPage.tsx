import { useState } from 'react';

import { useProjectWebSocket } from '@agent-portal/client/react';

import { StateBadge } from '../../components/StateBadge';
import { can } from '../../lib/auth';
import { href } from '../../lib/router';
import { useSession } from '../../store/session';
import { useChat } from '../../store/useChat';
import { useProjectLive } from '../../store/useProjectLive';
import { Composer } from './Composer';
import { MessageList } from './MessageList';
import { ThreadPanel } from './ThreadPanel';

export interface OpenThread {
  parentId: string;
  threadId?: string;
}

export function ChatPage({ project }: { project: string }) {
  const { session } = useSession();
  useProjectWebSocket(project); // presence: joining and leaving are what others see
  const { live } = useProjectLive(project);
  const chat = useChat(project, session.userId);
  const [thread, setThread] = useState<OpenThread | null>(null);
  const canWrite = can(session, 'chat:write');

  return (
    <div className={`page chat ${thread ? 'with-thread' : ''}`}>
      <header className="page-head">
        <h1 className="page-title">
          <a href={href({ page: 'project', project })}>{project}</a> · chat
        </h1>
        <StateBadge state={live.state} />
        <div className="online" aria-label="Online users" data-testid="online-users">
          {live.users.map((u) => (
            <span key={u} className="avatar" title={u}>
              <span aria-hidden="true">{u.slice(0, 1).toUpperCase()}</span>
              <span className="avatar-name">{u}</span>
            </span>
          ))}
          <span className="muted small">{live.users.length} online</span>
        </div>
      </header>
      <div className="chat-body">
        <section className="chat-main" aria-label="Messages">
          <MessageList
            project={project}
            chat={chat}
            me={session.userId}
            canWrite={canWrite}
            onOpenThread={(parentId) => setThread({ parentId, threadId: chat.threadOf[parentId] })}
            onOpenThreadById={(threadId) => setThread({ parentId: chat.threads[threadId]?.parent_message_id ?? '', threadId })}
          />
          <p className="typing" aria-live="polite" data-testid="typing">
            {chat.typing.length > 0 && `${chat.typing.join(', ')} ${chat.typing.length === 1 ? 'is' : 'are'} typing…`}
          </p>
          {canWrite ? (
            <Composer project={project} allowed={live.allowed} />
          ) : (
            <p className="muted composer-off">You can read this chat; writing needs the member role.</p>
          )}
        </section>
        {thread && (
          <ThreadPanel
            project={project}
            thread={thread}
            chat={chat}
            canWrite={canWrite}
            onThreadId={(threadId) => {
              setThread({ ...thread, threadId });
              if (thread.parentId) chat.noteThread(thread.parentId, threadId);
            }}
            onClose={() => setThread(null)}
          />
        )}
      </div>
    </div>
  );
}
