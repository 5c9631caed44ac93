import { WebSocketManager, type WebSocketManagerOptions } from './manager.js';

/**
 * A manager for the page's own server: the URL defaults to the page origin and the token to the one a
 * login link leaves in the fragment (`/#token=...`). Create it once at the app's root and hand it to
 * `<WebSocketProvider>`; nothing here is a module-level singleton.
 */
export function createWebSocketManager(options: WebSocketManagerOptions = {}): WebSocketManager {
  const token = tokenFromFragment();
  return new WebSocketManager({ ...(token === undefined ? {} : { token }), ...options });
}

function tokenFromFragment(): string | undefined {
  const hash = (globalThis as { location?: { hash?: string } }).location?.hash ?? '';
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token');
  return token ?? undefined;
}
