import { useEffect, useState } from 'react';

// Hash routes (`#/project/demo/chat`), so the server only has to serve index.html at `/`.
export type Route =
  | { page: 'dashboard' }
  | { page: 'project'; project: string }
  | { page: 'chat'; project: string }
  | { page: 'monitoring' }
  | { page: 'admin' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [first, second, third] = parts;
  if (first === 'project' && second) return third === 'chat' ? { page: 'chat', project: second } : { page: 'project', project: second };
  if (first === 'monitoring') return { page: 'monitoring' };
  if (first === 'admin') return { page: 'admin' };
  return { page: 'dashboard' };
}

export function href(route: Route): string {
  switch (route.page) {
    case 'dashboard':
      return '#/';
    case 'project':
      return `#/project/${encodeURIComponent(route.project)}`;
    case 'chat':
      return `#/project/${encodeURIComponent(route.project)}/chat`;
    default:
      return `#/${route.page}`;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
