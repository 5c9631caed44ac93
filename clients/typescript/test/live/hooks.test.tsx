// @vitest-environment jsdom
import { act, cleanup, render, renderHook, screen, waitFor } from '@testing-library/react';
import { useState } from 'react';
import { afterEach, describe, expect, it } from 'vitest';

import type { WebSocketManager } from '../../src/index.js';
import { WebSocketProvider, useProjectWebSocket, useWebSocketEvent } from '../../src/react.js';
import { liveClient, nextEvent } from '../support/live.js';

afterEach(() => {
  cleanup();
});

function ProjectStatus({ project, manager }: { project: string; manager?: WebSocketManager }) {
  const { connected, error } = useProjectWebSocket(project, manager);
  return (
    <p>
      <span data-testid="connected">{connected ? 'yes' : 'no'}</span>
      <span data-testid="error">{error ?? ''}</span>
    </p>
  );
}

function JoinedName({ manager }: { manager?: WebSocketManager }) {
  const [name, setName] = useState('');
  useWebSocketEvent('/project/demo', 'joined_project', (event) => setName(event.project_name), [], manager);
  return <span data-testid="joined">{name}</span>;
}

describe('React hooks in a DOM, against a live server', () => {
  it('useProjectWebSocket joins on mount, reports connected, and leaves on unmount', async () => {
    const observer = liveClient({ role: 'viewer' });
    await observer.manager.request('/project/demo', 'join_project', { project_name: 'demo' });
    const { manager, user } = liveClient();

    const joined = nextEvent(observer.manager, '/project/demo', 'user_joined', 5000, (e) => e.user_id === user);
    const view = render(
      <WebSocketProvider manager={manager}>
        <ProjectStatus project="demo" />
        <JoinedName />
      </WebSocketProvider>,
    );
    await waitFor(() => expect(screen.getByTestId('connected').textContent).toBe('yes'));
    expect(await joined).toMatchObject({ user_id: user, project_name: 'demo' });
    await waitFor(() => expect(screen.getByTestId('joined').textContent).toBe('demo'));
    expect(screen.getByTestId('error').textContent).toBe('');

    const left = nextEvent(observer.manager, '/project/demo', 'user_left', 5000, (e) => e.user_id === user);
    view.unmount();
    expect(await left).toMatchObject({ user_id: user, project_name: 'demo' });
  });

  it('useProjectWebSocket joins again after a reconnect', async () => {
    const observer = liveClient({ role: 'viewer' });
    await observer.manager.request('/project/demo', 'join_project', { project_name: 'demo' });
    const { manager, user } = liveClient();
    const mine = (event: { user_id: string }): boolean => event.user_id === user;

    const joined = nextEvent(observer.manager, '/project/demo', 'user_joined', 5000, mine);
    const { result } = renderHook(() => useProjectWebSocket('demo', manager));
    await joined;
    await waitFor(() => expect(result.current.connected).toBe(true));

    const left = nextEvent(observer.manager, '/project/demo', 'user_left', 5000, mine);
    const rejoined = nextEvent(observer.manager, '/project/demo', 'user_joined', 10_000, mine);
    act(() => manager.connect('/project/demo').io.engine.close());
    await left;
    await waitFor(() => expect(result.current.connected).toBe(false));
    await rejoined;
    await waitFor(() => expect(result.current.connected).toBe(true));
  });

  it('reports disconnection and errors', async () => {
    const { manager } = liveClient({ token: 'not-a-jwt', reconnection: false });
    render(<ProjectStatus project="demo" manager={manager} />);
    await waitFor(() => expect(screen.getByTestId('error').textContent).not.toBe(''));
    expect(screen.getByTestId('connected').textContent).toBe('no');

    const ok = liveClient();
    const { result } = renderHook(() => useProjectWebSocket('demo', ok.manager));
    await waitFor(() => expect(result.current.connected).toBe(true));
    act(() => ok.manager.disconnect('/project/demo'));
    await waitFor(() => expect(result.current.connected).toBe(false));
  });

  it('useProjectWebSocket returns emit and request bound to the project namespace', async () => {
    const { manager } = liveClient();
    const { result } = renderHook(() => useProjectWebSocket('demo', manager));
    await waitFor(() => expect(result.current.connected).toBe(true));
    expect(result.current.namespace).toBe('/project/demo');
    await expect(result.current.request('leave_project', { project_name: 'demo' })).resolves.toMatchObject({
      project_name: 'demo',
    });
    const joined = nextEvent(manager, '/project/demo', 'joined_project');
    act(() => result.current.emit('join_project', { project_name: 'demo' }));
    await joined;
  });

  it('useWebSocketEvent unsubscribes on unmount', async () => {
    const { manager } = liveClient();
    const seen: string[] = [];
    function Listener() {
      useWebSocketEvent('/portal', 'joined_project', (event) => seen.push(event.project_name), [], manager);
      return null;
    }
    const view = render(<Listener />);
    await manager.request('/portal', 'join_project', { project_name: 'demo' });
    await waitFor(() => expect(seen).toEqual(['demo']));
    view.unmount();
    await manager.request('/portal', 'leave_project', { project_name: 'demo' });
    const again = nextEvent(manager, '/portal', 'joined_project');
    await manager.request('/portal', 'join_project', { project_name: 'demo' });
    await again;
    expect(seen).toEqual(['demo']);
  });

  it('needs a provider or an explicit manager', () => {
    const quiet = console.error;
    console.error = () => undefined;
    try {
      expect(() => render(<ProjectStatus project="demo" />)).toThrow(/WebSocketProvider/);
    } finally {
      console.error = quiet;
    }
  });
});
