import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';

import type { FileAttachment } from '@agent-portal/client';
import { chatNamespace } from '@agent-portal/client';

import { uploadAttachment } from '../../lib/api';
import { bytes } from '../../lib/format';
import { useSession } from '../../store/session';
import { useToasts } from '../../store/toasts';
import { errorMessage, useRequest } from '../../store/useRequest';
import { drafts } from '../../store/useRunCommand';
import { suggest } from './catalog';

const TYPING_REPEAT_MS = 3000;

interface Props {
  project: string;
  allowed: string[];
  threadId?: string;
  onSent?: (reply: { message_id: string; thread_id: string | null }) => void;
  label?: string;
}

/** Message box: commands with autocomplete (allowed in the current state), attachments, typing signals. */
export function Composer({ project, allowed, threadId, onSent, label = 'Message' }: Props) {
  const ns = chatNamespace(project);
  const request = useRequest();
  const { session } = useSession();
  const { push } = useToasts();
  const [text, setText] = useState(() => (threadId === undefined ? (drafts.get(project) ?? '') : ''));
  const [files, setFiles] = useState<FileAttachment[]>([]);
  const [uploading, setUploading] = useState(false);
  const [active, setActive] = useState(0);
  const [dismissed, setDismissed] = useState(false);
  const typingSent = useRef(0);
  const listId = useId();
  const fileInput = useRef<HTMLInputElement>(null);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    drafts.delete(project);
  }, [project]);

  const options = dismissed || threadId !== undefined ? [] : suggest(allowed, text);
  const open = options.length > 0;

  const stopTyping = (): void => {
    if (typingSent.current) {
      typingSent.current = 0;
      request(ns, 'typing_stop', {}).catch(() => undefined);
    }
  };

  const onChange = (value: string): void => {
    setText(value);
    setActive(0);
    setDismissed(false);
    if (!value) return stopTyping();
    const now = Date.now();
    if (now - typingSent.current > TYPING_REPEAT_MS) {
      typingSent.current = now;
      request(ns, 'typing_start', {}).catch(() => undefined);
    }
  };

  const pick = (command: string): void => {
    setText(`${command} `);
    setDismissed(true);
    input.current?.focus();
  };

  const send = async (event?: FormEvent): Promise<void> => {
    event?.preventDefault();
    const content = text.trim();
    if (!content && files.length === 0) return;
    const isCommand = content.startsWith('/');
    try {
      const reply = await request(ns, 'send_message', {
        content: content || files.map((f) => f.name).join(', '),
        type: threadId !== undefined ? 'thread_reply' : isCommand ? 'command' : 'message',
        ...(threadId !== undefined ? { thread_id: threadId } : {}),
        ...(files.length ? { attachments: files.map(({ id, name, size, type, url }) => ({ id, name, size, type, url })) } : {}),
      });
      setText('');
      setFiles([]);
      stopTyping();
      onSent?.(reply);
    } catch (error) {
      push(errorMessage(error));
    }
  };

  const onKeyDown = (event: KeyboardEvent<HTMLInputElement>): void => {
    if (open && (event.key === 'ArrowDown' || event.key === 'ArrowUp')) {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      setActive((i) => (i + step + options.length) % options.length);
    } else if (open && (event.key === 'Tab' || (event.key === 'Enter' && text.trim() !== options[active]?.command))) {
      event.preventDefault();
      pick(options[active]!.command);
    } else if (open && event.key === 'Escape') {
      setDismissed(true);
    }
  };

  const attach = async (list: FileList | null): Promise<void> => {
    if (!list?.length) return;
    setUploading(true);
    try {
      const uploaded = await Promise.all([...list].slice(0, 5 - files.length).map((f) => uploadAttachment(session.token, project, f)));
      setFiles((prev) => [...prev, ...uploaded]);
    } catch (error) {
      push(`Upload failed: ${errorMessage(error)}`);
    } finally {
      setUploading(false);
      if (fileInput.current) fileInput.current.value = '';
    }
  };

  return (
    <form className="composer" onSubmit={send}>
      {open && (
        <ul className="suggestions" id={listId} role="listbox" aria-label="Commands allowed now">
          {options.map((o, i) => (
            <li
              key={o.command}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              className={i === active ? 'active' : ''}
              onMouseDown={(e) => {
                e.preventDefault();
                pick(o.command);
              }}
            >
              <span className="mono">{o.usage}</span>
              <span className="muted small">{o.description}</span>
            </li>
          ))}
        </ul>
      )}
      {files.length > 0 && (
        <ul className="attachments pending">
          {files.map((f) => (
            <li key={f.id}>
              📎 {f.name} <span className="muted small">{bytes(f.size)}</span>
              <button type="button" className="link-button" aria-label={`Remove ${f.name}`} onClick={() => setFiles((p) => p.filter((x) => x.id !== f.id))}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="composer-row">
        <label className="attach-button" title="Attach files">
          <span className="sr-only">Attach files</span>
          <svg aria-hidden="true" width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
            <path d="M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6l7.9-7.9" />
          </svg>
          <input ref={fileInput} type="file" multiple onChange={(e) => void attach(e.target.files)} disabled={uploading || files.length >= 5} />
        </label>
        <input
          ref={input}
          className="composer-input"
          aria-label={label}
          role="combobox"
          aria-expanded={open}
          aria-controls={open ? listId : undefined}
          aria-autocomplete="list"
          aria-activedescendant={open ? `${listId}-${active}` : undefined}
          placeholder={threadId !== undefined ? 'Reply in thread…' : 'Message, or / for commands'}
          value={text}
          maxLength={2000}
          onChange={(e) => onChange(e.target.value)}
          onKeyDown={onKeyDown}
          onBlur={stopTyping}
        />
        <button type="submit" className="primary" disabled={uploading}>
          Send
        </button>
      </div>
    </form>
  );
}
