import type { FileAttachment, WorkflowState } from './types';

export interface ProjectSummary {
  name: string;
  external: boolean;
  current_state: WorkflowState;
  active_users: number;
  last_activity: string;
}

async function json<T>(response: Response): Promise<T> {
  const body = (await response.json().catch(() => ({}))) as T & { error?: { message?: string } };
  if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
  return body;
}

export async function fetchProjects(token: string): Promise<ProjectSummary[]> {
  const response = await fetch('api/projects', { headers: { authorization: `Bearer ${token}` } });
  return (await json<{ projects: ProjectSummary[] }>(response)).projects;
}

export async function uploadAttachment(token: string, project: string, file: File): Promise<FileAttachment> {
  const response = await fetch(`api/projects/${encodeURIComponent(project)}/attachments`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': file.type || 'application/octet-stream',
      'x-file-name': file.name,
    },
    body: file,
  });
  return json<FileAttachment>(response);
}

/** Attachment URLs need the token; the browser cannot send a header for a plain link. */
export const attachmentHref = (url: string, token: string): string =>
  `${url.replace(/^\//, '')}?token=${encodeURIComponent(token)}`;
