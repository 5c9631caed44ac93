// The session: a token kept in sessionStorage (per tab), the identity read from its claims, refresh before expiry.

export interface Session {
  token: string;
  userId: string;
  role: string;
  permissions: string[];
  projects: string[];
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

const KEY = 'agent-portal.session';

interface Claims {
  sub?: string;
  role?: string;
  permissions?: string[];
  projects?: string[];
  exp?: number;
}

function decodeClaims(token: string): Claims | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    return JSON.parse(json) as Claims;
  } catch {
    return null;
  }
}

export function sessionFromToken(token: string): Session | null {
  const claims = decodeClaims(token);
  if (!claims?.sub || !claims.exp) return null;
  return {
    token,
    userId: claims.sub,
    role: claims.role ?? 'viewer',
    permissions: claims.permissions ?? [],
    projects: claims.projects ?? [],
    expiresAt: claims.exp * 1000,
  };
}

export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(KEY);
  if (!raw) return null;
  const session = sessionFromToken(raw);
  return session && session.expiresAt > Date.now() ? session : null;
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(KEY, session.token);
  else sessionStorage.removeItem(KEY);
}

/** A one-click login link leaves `#token=...`; take it and clean the address bar. */
export function takeTokenFromFragment(): Session | null {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('token');
  if (!token) return null;
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  return sessionFromToken(token);
}

export class LoginError extends Error {}

export async function login(username: string, password: string): Promise<Session> {
  const response = await fetch('api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  const body = (await response.json().catch(() => ({}))) as { token?: string; error?: { message?: string } };
  if (!response.ok || !body.token) throw new LoginError(body.error?.message ?? `Login failed (${response.status})`);
  const session = sessionFromToken(body.token);
  if (!session) throw new LoginError('The server sent a token this page cannot read');
  return session;
}

export async function refresh(session: Session): Promise<Session> {
  const response = await fetch('api/auth/refresh', {
    method: 'POST',
    headers: { authorization: `Bearer ${session.token}` },
  });
  const body = (await response.json().catch(() => ({}))) as { token?: string };
  const next = body.token ? sessionFromToken(body.token) : null;
  if (!response.ok || !next) throw new LoginError(`Refresh failed (${response.status})`);
  return next;
}

/** When to refresh: a minute before expiry, or at 80% of the remaining life for short tokens. */
export function refreshDelay(session: Session, now = Date.now()): number {
  const left = session.expiresAt - now;
  return Math.max(1000, Math.min(left - 60_000, left * 0.8));
}

export const can = (session: Session, permission: string): boolean => session.permissions.includes(permission);
