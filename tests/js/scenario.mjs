// Drives the official socket.io-client against a live server and prints one JSON object of what it saw.
// Usage: node scenario.mjs <config-json>   (see tests/integration/test_js_client.py)
import { io } from "socket.io-client";

const config = JSON.parse(process.argv[2]);
const { url, transports, upgrade, tokens } = config;
const out = {};

function connect(namespace, token) {
  return io(url + namespace, {
    transports,
    upgrade,
    auth: token ? { token } : undefined,
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
}

function once(socket, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args.length === 1 ? args[0] : args);
    });
  });
}

async function refusal(namespace, token) {
  const socket = connect(namespace, token);
  try {
    const err = await once(socket, "connect_error");
    return { message: err.message, data: err.data };
  } finally {
    socket.close();
  }
}

const sockets = [];
try {
  const portal = connect("/portal", tokens.alice);
  sockets.push(portal);
  await once(portal, "connect");
  out.portal_connected = portal.connected;
  out.join = await portal.timeout(5000).emitWithAck("join_project", { project_name: "ext" });
  out.join_event = portal.listeners("joined_project").length === 0 ? undefined : null;

  const project = connect("/project/ext", tokens.alice);
  sockets.push(project);
  await once(project, "connect");

  const orch = connect("/orchestrator", tokens.orchestrator);
  sockets.push(orch);
  await once(orch, "connect");
  orch.on("command", (request, ack) => ack({ success: true, result: { message: `ok ${request.command}` } }));

  const stateChange = once(project, "state_change");
  const onPortal = once(portal, "state_change");
  out.publish = await orch.timeout(5000).emitWithAck("publish", {
    event: "state_change",
    data: {
      project_name: "ext",
      old_state: "IDLE",
      new_state: "BACKLOG_READY",
      timestamp: "2026-11-25T20:00:00.000Z",
      triggered_by: "js-orchestrator",
    },
  });
  out.state_change = await stateChange;
  out.state_change_on_portal = await onPortal;

  const chat = connect("/chat/ext", tokens.alice);
  sockets.push(chat);
  await once(chat, "connect");
  const validation = once(chat, "validation_error");
  out.bad_message = await chat.timeout(5000).emitWithAck("send_message", { content: "", type: "shout" });
  out.validation_error = await validation;
  const result = once(chat, "command_result");
  out.command_ack = await chat.timeout(5000).emitWithAck("send_message", { content: "/state", type: "command" });
  out.command_result = await result;

  out.unknown = await portal.timeout(5000).emitWithAck("no_such_event", {});

  out.refused_token = await refusal("/portal", "not-a-token");
  out.refused_project = await refusal("/project/nope", tokens.admin);
  out.refused_admin = await refusal("/admin", tokens.alice);

  if (upgrade && transports.includes("websocket")) {
    for (let i = 0; i < 100 && portal.io.engine.transport.name !== "websocket"; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  out.transport = portal.io.engine.transport.name;
  out.ok = true;
} catch (error) {
  out.ok = false;
  out.error = String(error && error.stack ? error.stack : error);
} finally {
  for (const socket of sockets) socket.close();
  console.log(JSON.stringify(out));
}
