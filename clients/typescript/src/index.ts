export { WebSocketManager, type RequestOptions, type TokenSource, type WebSocketManagerOptions } from './manager.js';
export {
  DEFAULT_RECONNECTION_CONFIG,
  ReconnectionManager,
  type ReconnectionConfig,
  type ReconnectionSchedule,
} from './reconnection.js';
export {
  WebSocketErrorHandler,
  WebSocketRequestError,
  fromConnectError,
  fromServerErrorEvent,
  fromWireError,
  makeError,
  type ErrorRoute,
  type ErrorRoutes,
  type WebSocketError,
  type WebSocketErrorType,
} from './errors.js';
export {
  chatNamespace,
  namespaceKind,
  projectNamespace,
  type KindOf,
  type Namespace,
} from './namespaces.js';
export type {
  ClientEventName,
  ClientEventsFor,
  ConnectedNotification,
  DisconnectedNotification,
  ReconnectFailedNotification,
  ReconnectingNotification,
  SubscriptionEventName,
  SubscriptionEvents,
} from './events.js';
export type * from './generated/protocol.js';
export type { WebSocketError as WireWebSocketError } from './generated/protocol.js';
export { createWebSocketManager } from './default-manager.js';
