import { describe, expect, it } from 'vitest';

import { chatNamespace, namespaceKind, projectNamespace } from '../../src/index.js';

describe('namespaces', () => {
  it.each([
    ['/portal', 'portal'],
    ['/project/demo', 'project'],
    ['/project/my.app-2_x', 'project'],
    ['/chat/demo', 'chat'],
    ['/monitoring', 'monitoring'],
    ['/admin', 'admin'],
    ['/orchestrator', 'orchestrator'],
  ])('%s is a %s namespace', (namespace, kind) => {
    expect(namespaceKind(namespace)).toBe(kind);
  });

  it.each(['/', '/project/', '/project/a/b', '/chat/has space', '/unknown'])('%s is not a namespace', (namespace) => {
    expect(() => namespaceKind(namespace)).toThrow(TypeError);
  });

  it('builds project and chat namespaces', () => {
    expect(projectNamespace('demo')).toBe('/project/demo');
    expect(chatNamespace('demo')).toBe('/chat/demo');
  });
});
