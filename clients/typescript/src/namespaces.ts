import type { NamespaceKind } from './generated/protocol.js';

/** Every namespace the server serves. */
export type Namespace =
  | '/portal'
  | `/project/${string}`
  | `/chat/${string}`
  | '/monitoring'
  | '/admin'
  | '/orchestrator';

/** The namespace kind a namespace string belongs to, at the type level. */
export type KindOf<N extends Namespace> = N extends '/portal'
  ? 'portal'
  : N extends `/project/${string}`
    ? 'project'
    : N extends `/chat/${string}`
      ? 'chat'
      : N extends '/monitoring'
        ? 'monitoring'
        : N extends '/admin'
          ? 'admin'
          : N extends '/orchestrator'
            ? 'orchestrator'
            : never;

const FIXED: Record<string, NamespaceKind> = {
  '/portal': 'portal',
  '/monitoring': 'monitoring',
  '/admin': 'admin',
  '/orchestrator': 'orchestrator',
};

/** The namespace kind at run time; throws for a string that is no namespace of ours. */
export function namespaceKind(namespace: string): NamespaceKind {
  const fixed = FIXED[namespace];
  if (fixed) return fixed;
  const match = /^\/(project|chat)\/[A-Za-z0-9._-]{1,64}$/.exec(namespace);
  if (match?.[1] === 'project' || match?.[1] === 'chat') return match[1];
  throw new TypeError(`not an agent-portal namespace: ${namespace}`);
}

export const projectNamespace = (projectName: string): `/project/${string}` => `/project/${projectName}`;
export const chatNamespace = (projectName: string): `/chat/${string}` => `/chat/${projectName}`;
