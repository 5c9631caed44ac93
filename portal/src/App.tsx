import { useEffect, useMemo, useRef, useState } from 'react';

import { WebSocketErrorHandler, WebSocketManager } from '@agent-portal/client';
import { WebSocketProvider } from '@agent-portal/client/react';

import { loadSession, refresh, refreshDelay, saveSession, takeTokenFromFragment, type Session } from './lib/auth';
import { LoginPage } from './pages/LoginPage';
import { Shell } from './Shell';
import { SessionProvider } from './store/session';
import { ToastProvider } from './store/toasts';

const FINAL_AUTH_CODES = new Set(['invalid_token', 'token_expired', 'not_authenticated']);

export function App() {
  const [session, setSession] = useState<Session | null>(() => takeTokenFromFragment() ?? loadSession());
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => saveSession(session), [session]);

  // Refresh before expiry; a refused refresh ends the session.
  useEffect(() => {
    if (!session) return;
    const id = window.setTimeout(() => {
      refresh(session)
        .then(setSession)
        .catch(() => {
          setNotice('Your session expired. Log in again.');
          setSession(null);
        });
    }, refreshDelay(session));
    return () => window.clearTimeout(id);
  }, [session]);

  if (!session) {
    return (
      <LoginPage
        notice={notice}
        onLogin={(next) => {
          setNotice(null);
          setSession(next);
        }}
      />
    );
  }
  return (
    <LoggedIn
      session={session}
      logout={(reason) => {
        setNotice(reason ?? null);
        setSession(null);
      }}
    />
  );
}

function LoggedIn({ session, logout }: { session: Session; logout: (reason?: string) => void }) {
  const token = useRef(session.token);
  token.current = session.token;
  const logoutRef = useRef(logout);
  logoutRef.current = logout;
  const toast = useRef<(text: string) => void>(() => undefined);

  // One manager per signed-in user; the token function hands out the refreshed token at each reconnect.
  const manager = useMemo(() => {
    const show = (error: { message: string }): void => toast.current(error.message);
    return new WebSocketManager({
      token: () => token.current,
      errorHandler: new WebSocketErrorHandler({
        authentication: (error) => {
          if (FINAL_AUTH_CODES.has(error.code ?? '')) logoutRef.current(`Signed out: ${error.message}`);
        },
        // A rate-limited request is sent again by the client after `retry_after`; no need to alarm.
        validation: (error) => (error.code === 'rate_limited' ? undefined : show(error)),
        server: show,
        connection: () => undefined, // the status bar shows it
        network: () => undefined,
      }),
    });
  }, [session.userId]);
  useEffect(() => () => manager.disconnect(), [manager]);

  const value = useMemo(() => ({ session, logout }), [session, logout]);
  return (
    <SessionProvider value={value}>
      <WebSocketProvider manager={manager}>
        <ToastProvider bind={(api) => (toast.current = api.push)}>
          <Shell />
        </ToastProvider>
      </WebSocketProvider>
    </SessionProvider>
  );
}
