'use strict';
// Reference server: Node socket.io 4.8, one process, the bench protocol (see bench/README.md).
// Usage: node server.js PORT
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}

let nsp = null;

// HTTP trigger: POST /broadcast {room, payload, t} emits `msg` to the room.
const httpServer = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/broadcast') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let data;
      try {
        data = JSON.parse(Buffer.concat(chunks).toString());
      } catch (e) {
        res.writeHead(400).end('bad json');
        return;
      }
      nsp.to(String(data.room)).emit('msg', data);
      res.writeHead(204).end();
    });
    return;
  }
  if (req.url === '/health') {
    res.writeHead(200).end('ok');
    return;
  }
  res.writeHead(404).end();
});

// Same Engine.IO settings as the Python servers (bench/servers/benchapp.py).
const io = new Server(httpServer, {
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  cors: { origin: '*' },
});

nsp = io.of('/bench');
nsp.on('connection', (socket) => {
  socket.on('join', (data, ack) => {
    socket.join(String(data.room));
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('broadcast', (data, ack) => {
    nsp.to(String(data.room)).emit('msg', data);
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('echo', (data, ack) => {
    if (typeof ack === 'function') ack(data);
  });
});

httpServer.listen(port, '127.0.0.1', 4096, () => {
  console.log(`node socket.io ${require('socket.io/package.json').version} listening on 127.0.0.1:${port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
