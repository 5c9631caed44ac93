import type { WorkflowState } from './types';

/** The domain page's state colours (§5); the CSS holds the light/dark shades. */
export const STATE_COLOURS: Record<WorkflowState, string> = {
  IDLE: 'gray',
  BACKLOG_READY: 'blue',
  SPRINT_PLANNED: 'yellow',
  SPRINT_ACTIVE: 'green',
  SPRINT_PAUSED: 'orange',
  SPRINT_REVIEW: 'purple',
  BLOCKED: 'red',
};

export const stateLabel = (state: string): string => state.replace(/_/g, ' ').toLowerCase();

/** Demo agents mark their output with `[demo]` (decisions §6); the portal says so. */
export const isDemo = (text: string | null | undefined): boolean => !!text && text.includes('[demo]');
export const stripDemo = (text: string): string => text.replace(/\[demo\] ?/g, '');

export function time(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function duration(ms: number): string {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  return `${m}:${String(sec).padStart(2, '0')}`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export const percent = (n: number): string => `${Math.round(n)}%`;

/** Short spans (phases, agent steps): milliseconds, seconds, then minutes. */
export function shortDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return duration(ms);
}
