// Connection state recovery with the official client (decisions §7). Prints JSON lines; between
// phases it prints {"phase": "..."} and waits for a line on stdin (the test restarts the server).
// Usage: node recovery.mjs <config-json>
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const { url, token, orchestratorToken } = JSON.parse(process.argv[2]);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const received = [];
const out = (obj) => console.log(JSON.stringify(obj));

function once(socket, event, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), ms);
    socket.once(event, (...args) => { clearTimeout(timer); resolve(args); });
  });
}

async function until(predicate, ms = 8000) {
  const start = Date.now();
  while (!predicate()) {
    if (Date.now() - start > ms) throw new Error("timeout");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function orchestrator() {
  const socket = io(url + "/orchestrator", { auth: { token: orchestratorToken }, transports: ["websocket"], reconnection: false, forceNew: true });
  return once(socket, "connect").then(() => socket);
}

async function publish(orch, name) {
  const reply = await orch.timeout(5000).emitWithAck("publish", {
    event: "state_change",
    data: { project_name: "ext", old_state: "IDLE", new_state: "BACKLOG_READY", timestamp: new Date().toISOString(), triggered_by: name },
  });
  if (!reply.ok) throw new Error(JSON.stringify(reply));
}

async function disconnect(project) {
  const gone = once(project, "disconnect");
  project.io.engine.close(); // the network drops: not a client-side disconnect, so the pid is kept
  await gone;
}

async function reconnect(project) {
  const back = once(project, "connect");
  project.connect();
  await back;
  return project.recovered;
}

const result = { ok: false };
try {
  const project = io(url + "/project/ext", { auth: { token, recovery: true }, transports: ["websocket"], reconnection: false, forceNew: true });
  project.on("state_change", (event, offset) => received.push({ name: event.triggered_by, offset }));
  await once(project, "connect");
  let orch = await orchestrator();

  for (const n of ["e1", "e2", "e3"]) await publish(orch, n);
  await until(() => received.length === 3);
  await disconnect(project);
  for (const n of ["e4", "e5", "e6"]) await publish(orch, n);
  result.recovered_same_server = await reconnect(project);
  await publish(orch, "e7");
  await until(() => received.some((r) => r.name === "e7"));

  await disconnect(project);
  for (const n of ["e8", "e9"]) await publish(orch, n);
  orch.close();
  out({ phase: "restart" });
  await lines.next();
  orch = await orchestrator();
  result.recovered_after_restart = await reconnect(project);
  await publish(orch, "e10");
  await until(() => received.some((r) => r.name === "e10"));

  await disconnect(project);
  await publish(orch, "lost");
  out({ phase: "wait-beyond-window" });
  await lines.next();
  result.recovered_beyond_window = await reconnect(project);
  await publish(orch, "e11");
  await until(() => received.some((r) => r.name === "e11"));
  result.snapshot = await project.timeout(5000).emitWithAck("get_snapshot", {});
  result.received = received;
  result.ok = true;
  project.close();
  orch.close();
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
  result.received = received;
}
out(result);
process.exit(0);
