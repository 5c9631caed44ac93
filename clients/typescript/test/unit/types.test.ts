// Compile-time checks (run by `npm run typecheck`); at run time these only exercise the calls' shapes.
import { describe, expectTypeOf, it } from 'vitest';

import type {
  ClientEventsFor,
  ConnectedNotification,
  KindOf,
  SendMessageRequest,
  StateChangeEvent,
  SubscriptionEvents,
  WebSocketError,
  WebSocketManager,
  WireWebSocketError,
} from '../../src/index.js';

declare const manager: WebSocketManager;

describe('generated types', () => {
  it('maps namespace strings to kinds', () => {
    expectTypeOf<KindOf<'/project/demo'>>().toEqualTypeOf<'project'>();
    expectTypeOf<KindOf<'/chat/demo'>>().toEqualTypeOf<'chat'>();
    expectTypeOf<KindOf<'/portal'>>().toEqualTypeOf<'portal'>();
    expectTypeOf<ClientEventsFor<'/chat/demo'>['send_message']>().toEqualTypeOf<SendMessageRequest>();
  });

  it('types subscriber arguments by event', () => {
    expectTypeOf<SubscriptionEvents['state_change']>().toEqualTypeOf<StateChangeEvent>();
    expectTypeOf<SubscriptionEvents['connected']>().toEqualTypeOf<ConnectedNotification>();
    expectTypeOf<SubscriptionEvents['error']>().toEqualTypeOf<WebSocketError>();
    expectTypeOf<WebSocketError['timestamp']>().toEqualTypeOf<Date>();
    expectTypeOf<WireWebSocketError['timestamp']>().toEqualTypeOf<string>();
  });

  it('checks calls against the schema', () => {
    const calls = (): void => {
      manager.subscribe('/project/demo', 'state_change', (event) => {
        expectTypeOf(event).toEqualTypeOf<StateChangeEvent>();
        expectTypeOf(event.new_state).toEqualTypeOf<StateChangeEvent['new_state']>();
      });
      // @ts-expect-error: no such server event
      manager.subscribe('/project/demo', 'state_chnage', () => undefined);

      void manager.request('/chat/demo', 'send_message', { content: 'hi', type: 'message' });
      // @ts-expect-error: `type` must be command | message | thread_reply
      void manager.request('/chat/demo', 'send_message', { content: 'hi', type: 'shout' });
      // @ts-expect-error: send_message belongs to /chat, not /project
      void manager.request('/project/demo', 'send_message', { content: 'hi', type: 'message' });
      // @ts-expect-error: unknown field
      manager.emit('/portal', 'join_project', { project_name: 'demo', extra: 1 });
      manager.emit('/portal', 'join_project', { project_name: 'demo' });
      // @ts-expect-error: not a namespace of the server
      manager.connect('/nowhere');
    };
    expectTypeOf(calls).toBeFunction();
  });
});
