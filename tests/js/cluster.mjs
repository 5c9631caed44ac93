// The official client through a load balancer in front of a cluster (decisions §9): it stays
// connected to /chat/{project} with recovery on, reconnects by itself when its node dies, and at the
// end reports every message_received it got (content and offset). Prints JSON lines:
// {"phase":"connected","recovered":bool} on each connect, {"phase":"disconnected"}; on the line
// "report" on stdin it prints {"received":[...]} and exits.
// Usage: node cluster.mjs <config-json: {url, token, project}>
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const { url, token, project } = JSON.parse(process.argv[2]);
const out = (obj) => console.log(JSON.stringify(obj));
const received = [];

const socket = io(`${url}/chat/${project}`, {
  auth: { token, recovery: true },
  transports: ["websocket"],
  reconnectionDelay: 100,
  reconnectionDelayMax: 300,
  forceNew: true,
});
socket.on("message_received", (message, offset) => received.push({ content: message.content, offset }));
socket.on("connect", () => out({ phase: "connected", recovered: socket.recovered }));
socket.on("disconnect", (reason) => out({ phase: "disconnected", reason }));
socket.on("connect_error", (err) => out({ phase: "connect_error", message: err.message }));

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === "report") {
    out({ received });
    socket.close();
    process.exit(0);
  }
}
