import { useCallback, useRef } from 'react';

import { chatNamespace } from '@agent-portal/client';
import { useWebSocketEvent } from '@agent-portal/client/react';

import { useToasts } from './toasts';
import { errorMessage, useRequest } from './useRequest';

/** Runs a chat command from outside the chat (buttons); a refused command shows as a notice. */
export function useRunCommand(project: string): (command: string) => Promise<void> {
  const request = useRequest();
  const { push } = useToasts();
  const ns = chatNamespace(project);
  const mine = useRef(new Set<string>());

  useWebSocketEvent(ns, 'command_result', (result) => {
    if (!mine.current.delete(result.message_id)) return;
    if (!result.success) push(`${result.command}: ${result.error ?? 'refused'}`);
    else push(`${result.command}: done`, 'info');
  });

  return useCallback(
    async (command: string) => {
      try {
        const reply = await request(ns, 'send_message', { content: command, type: 'command' });
        mine.current.add(reply.message_id);
      } catch (error) {
        push(errorMessage(error));
      }
    },
    [request, ns, push],
  );
}

/** A command to put in the chat composer when the chat opens (from the project page's command chips). */
export const drafts = new Map<string, string>();
