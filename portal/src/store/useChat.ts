import { useCallback, useEffect, useRef, useState } from 'react';

import type { CommandResultEvent, MessageReceivedEvent } from '@agent-portal/client';
import { chatNamespace } from '@agent-portal/client';
import { useWebSocketEvent, useWebSocketManager } from '@agent-portal/client/react';

import type { HistoryPage } from '../lib/types';

export interface ThreadInfo {
  thread_id: string;
  parent_message_id?: string;
  message_count: number;
  participants: string[];
}

export interface ChatState {
  messages: MessageReceivedEvent[];
  hasMore: boolean;
  loading: boolean;
  results: Record<string, CommandResultEvent>;
  threads: Record<string, ThreadInfo>; // by thread id
  threadOf: Record<string, string>; // parent message id -> thread id
  typing: string[];
}

const PAGE = 50;
const TYPING_LAPSE_MS = 6000; // decisions §4

/** A project's chat: history pages (oldest first), live messages, results, threads, reactions, typing. */
export function useChat(project: string, me: string) {
  const manager = useWebSocketManager();
  const ns = chatNamespace(project);
  const [messages, setMessages] = useState<MessageReceivedEvent[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [loading, setLoading] = useState(true);
  const [results, setResults] = useState<Record<string, CommandResultEvent>>({});
  const [threads, setThreads] = useState<Record<string, ThreadInfo>>({});
  const [threadOf, setThreadOf] = useState<Record<string, string>>({});
  const [typing, setTyping] = useState<Record<string, number>>({});
  const loadingOlder = useRef(false);

  const merge = useCallback((incoming: MessageReceivedEvent[]) => {
    setMessages((prev) => {
      const byId = new Map(prev.map((m) => [m.message_id, m]));
      for (const m of incoming) byId.set(m.message_id, m);
      return [...byId.values()].sort((a, b) => a.timestamp.localeCompare(b.timestamp));
    });
  }, []);

  const noteThreads = useCallback((page: HistoryPage<MessageReceivedEvent>) => {
    const list = page.threads ?? [];
    if (!list.length) return;
    setThreads((prev) => ({ ...prev, ...Object.fromEntries(list.map((t) => [t.thread_id, { ...prev[t.thread_id], ...t }])) }));
    setThreadOf((prev) => ({ ...prev, ...Object.fromEntries(list.map((t) => [t.parent_message_id, t.thread_id])) }));
  }, []);

  const loadLatest = useCallback(() => {
    setLoading(true);
    manager
      .request(ns, 'get_history', { limit: PAGE })
      .then((page) => {
        const history = page as HistoryPage<MessageReceivedEvent>;
        merge(history.messages);
        noteThreads(history);
        setHasMore(history.has_more);
      })
      .catch(() => undefined)
      .finally(() => setLoading(false));
  }, [manager, ns, merge, noteThreads]);

  useEffect(() => {
    loadLatest(); // sent once connected; only a later, unrecovered reconnect needs another
    let first = !manager.isConnected(ns);
    return manager.subscribe(ns, 'connected', ({ recovered }) => {
      if (!recovered && !first) loadLatest();
      first = false;
    });
  }, [manager, ns, loadLatest]);

  // The oldest top-level message is the cursor: live thread replies may be older than it.
  const oldest = messages.find((m) => !m.thread_id)?.message_id;
  const loadOlder = useCallback(async (): Promise<void> => {
    if (!hasMore || !oldest || loadingOlder.current) return;
    loadingOlder.current = true;
    try {
      const page = (await manager.request(ns, 'get_history', { limit: PAGE, before_message_id: oldest })) as HistoryPage<MessageReceivedEvent>;
      merge(page.messages);
      noteThreads(page);
      setHasMore(page.has_more);
    } finally {
      loadingOlder.current = false;
    }
  }, [manager, ns, hasMore, oldest, merge, noteThreads]);

  useWebSocketEvent(ns, 'message_received', (m) => {
    merge([m]);
    setTyping(({ [m.user_id]: _gone, ...rest }) => rest);
  });
  useWebSocketEvent(ns, 'command_result', (r) => setResults((prev) => ({ ...prev, [r.message_id]: r })));
  useWebSocketEvent(ns, 'reaction_updated', (r) =>
    setMessages((prev) => prev.map((m) => (m.message_id === r.message_id ? { ...m, reactions: r.reactions } : m))),
  );
  useWebSocketEvent(ns, 'thread_created', (t) => {
    setThreadOf((prev) => ({ ...prev, [t.parent_message_id]: t.thread_id }));
    setThreads((prev) => ({
      ...prev,
      [t.thread_id]: { message_count: 0, participants: [], ...prev[t.thread_id], thread_id: t.thread_id, parent_message_id: t.parent_message_id },
    }));
  });
  useWebSocketEvent(ns, 'thread_updated', (t) =>
    setThreads((prev) => ({
      ...prev,
      [t.thread_id]: { ...prev[t.thread_id], thread_id: t.thread_id, message_count: t.message_count, participants: t.participants },
    })),
  );
  useWebSocketEvent(ns, 'typing_start', (t) => {
    if (t.user_id !== me) setTyping((prev) => ({ ...prev, [t.user_id]: Date.now() + TYPING_LAPSE_MS }));
  });
  useWebSocketEvent(ns, 'typing_stop', (t) => setTyping(({ [t.user_id]: _gone, ...rest }) => rest));

  // Typing states lapse on their own if a stop never arrives.
  useEffect(() => {
    const id = window.setInterval(() => {
      const now = Date.now();
      setTyping((prev) => {
        const kept = Object.entries(prev).filter(([, until]) => until > now);
        return kept.length === Object.keys(prev).length ? prev : Object.fromEntries(kept);
      });
    }, 1000);
    return () => window.clearInterval(id);
  }, []);

  const state: ChatState = { messages, hasMore, loading, results, threads, threadOf, typing: Object.keys(typing) };
  return { ...state, loadOlder, noteThread: (parent: string, thread: string) => setThreadOf((p) => ({ ...p, [parent]: thread })) };
}
