'use strict';
// Load generator for the bench protocol: raw Engine.IO v4 / Socket.IO v5 over WebSocket (ws), one
// coordinator process (publisher + pacing) and several worker processes (the subscribers / ack clients).
//
// Usage: node loadgen.js '<json config>'   (bench/driver.py builds the config)
// Talks to the driver on stdio: prints `MARK <name>` and waits for a line on stdin before it goes on
// (the driver samples the server's CPU / RSS there), then prints one `RESULT <json>` line. Logs on stderr.
// `ports` (or one `port`): with several (the nodes of a cluster) the subscribers / clients are spread
// evenly over them and the publisher connects to the first.
//
// Timestamps are CLOCK_MONOTONIC microseconds (process.hrtime), the same clock in every process on the
// machine, so publish-to-receipt latency is receipt time minus the `t` the publisher put in the payload.
const { fork } = require('child_process');
const readline = require('readline');
const WebSocket = require('ws');

const NSP = '/bench';
let T_KEY = Buffer.from('"t":'); // the product workload reads `"sequence_number":` (see productSpec)
// The events whose deliveries are counted: those the publisher sends. null counts every event (the
// bench servers send only `msg`); the product also sends `system_metrics` to every /monitoring
// socket every 5 s, which counted as deliveries ended each drain early, with the last broadcasts
// of the saturation phase still on their way into the latency phase.
let COUNTED = null;
const PRODUCT_EVENTS = ['test_output', 'state_change'].map((e) => Buffer.from(`["${e}"`));

// Whether the frame's event (at `at`) is one of COUNTED. A plain byte loop: with Buffer#compare
// (a native call with four offsets to check) this filter was 11 % of a worker's CPU on the product
// path at N = 100 (node --cpu-prof), charged to the product's deliveries/s as the load generator
// shares the machine's two cores with the server (docs/performance.md, session 14).
function countedAt(buf, at) {
  for (const name of COUNTED) {
    const n = name.length;
    if (at + n > buf.length) continue;
    let i = 0;
    while (i < n && buf[at + i] === name[i]) i++;
    if (i === n) return true;
  }
  return false;
}
const CONNECT_TIMEOUT_MS = 15000;
const REQUEST_TIMEOUT_MS = 15000;
const MAX_LATENCY_SAMPLES = 2000000;

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Reads the integer after `"t":` in a raw `42/bench,["msg",{...}]` frame without decoding the JSON.
function parseT(buf) {
  let i = buf.indexOf(T_KEY);
  if (i < 0) return -1;
  i += T_KEY.length;
  while (buf[i] === 0x20) i++;
  let v = 0;
  for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) v = v * 10 + (c - 0x30);
  return v;
}

class Client {
  // `nsp` and `auth` default to the bench protocol; the product workload connects elsewhere.
  constructor(url, onEvent, nsp = NSP, auth = null) {
    this.url = url;
    this.onEvent = onEvent;
    this.nsp = nsp;
    this.auth = auth;
    this.prefixLen = 2 + nsp.length + 1; // `42/bench,` / `43/bench,`
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.connected = false;
    this.unexpectedClose = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.url, { perMessageDeflate: false });
      this.ws = ws;
      const settle = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          ws.terminate();
          reject(err);
        } else {
          this.connected = true;
          resolve();
        }
      };
      const timer = setTimeout(() => settle(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
      ws.on('error', (e) => settle(e));
      ws.on('close', () => {
        if (this.connected && !this.closing) this.unexpectedClose = true;
        this.connected = false;
        settle(new Error('closed while connecting'));
        for (const [, p] of this.pending) p.reject(new Error('closed'));
        this.pending.clear();
      });
      ws.on('message', (data) => {
        const c0 = data[0];
        if (c0 === 0x34) { // engine.io MESSAGE
          const c1 = data[1];
          if (c1 === 0x32) this.onEvent(data, this.prefixLen); // socket.io EVENT
          else if (c1 === 0x33) this.onAck(data); // ACK
          else if (c1 === 0x30) settle(null); // CONNECT (namespace joined)
          else if (c1 === 0x34) settle(new Error(`connect_error ${data}`));
        } else if (c0 === 0x32) { // PING -> PONG
          ws.send('3');
        } else if (c0 === 0x30) { // OPEN -> connect the namespace
          ws.send(`40${this.nsp},${this.auth ? JSON.stringify(this.auth) : ''}`);
        }
      });
    });
  }

  emit(event, data) {
    this.ws.send(`42${this.nsp},${JSON.stringify([event, data])}`);
  }

  request(event, data) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${event} ack timeout`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.ws.send(`42${this.nsp},${id}${JSON.stringify([event, data])}`);
    });
  }

  onAck(buf) {
    let i = this.prefixLen;
    let id = 0;
    for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) id = id * 10 + (c - 0x30);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    p.resolve(buf.subarray(i));
  }

  close() {
    this.closing = true;
    if (this.ws) this.ws.terminate();
  }
}

// The product path (bench/servers/product.py): subscribers alternate between /project/{p} (test_output
// and state_change) and /monitoring (test_output of p), all with recovery on, as the clients default to.
function productSpec(auth) {
  return [
    { nsp: `/project/${auth.project}`, events: ['test_output', 'state_change'], project: null },
    { nsp: '/monitoring', events: ['test_output'], project: auth.project },
  ];
}

// Opens n clients, `concurrency` handshakes in flight; each joins `room` when it is not null
// (product: subscribes as productSpec says, the k-th client of a worker taking spec k mod 2).
// Clients go round-robin over `urls`, a pair at a time for the product so that every server gets as
// many /project subscribers (which also receive state_change) as /monitoring ones.
async function connectMany(urls, n, room, concurrency, onEvent, into, product = null) {
  const group = product ? 2 : 1;
  const perUrl = new Array(urls.length).fill(0);
  let started = 0;
  let ok = 0;
  let errors = 0;
  let lastError = '';
  const t0 = nowUs();
  let tLast = t0;
  async function lane() {
    while (started < n) {
      const k = started++;
      const u = Math.floor(k / group) % urls.length;
      const url = urls[u];
      const spec = product ? productSpec(product)[k % 2] : null;
      const c = spec
        ? new Client(url, onEvent, spec.nsp, { token: product.member, recovery: true })
        : new Client(url, onEvent);
      try {
        await c.connect();
        if (spec) {
          const data = spec.project ? { events: spec.events, project_name: spec.project } : { events: spec.events };
          const reply = await c.request('subscribe_to_events', data);
          if (!reply.toString().includes('"ok":true')) throw new Error(`subscribe refused: ${reply}`);
        } else if (room !== null) await c.request('join', { room });
        into.push(c);
        ok++;
        perUrl[u]++;
        tLast = nowUs();
      } catch (e) {
        errors++;
        lastError = String(e && e.message ? e.message : e);
        c.close();
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, lane));
  return { ok, errors, lastError, t0, tLast, perUrl };
}

// ---------------------------------------------------------------- worker process
function runWorker() {
  const clients = [];
  let received = 0;
  let reported = -1;
  let collecting = false;
  let latencies = [];
  let others = 0; // events that are not counted (see COUNTED)
  const onEvent = (buf, at) => {
    if (COUNTED !== null && !countedAt(buf, at)) {
      others++;
      return;
    }
    received++;
    if (collecting && latencies.length < MAX_LATENCY_SAMPLES) {
      const t = parseT(buf);
      if (t > 0) latencies.push(nowUs() - t);
    }
  };
  const reporter = setInterval(() => {
    if (received !== reported) {
      reported = received;
      process.send({ ev: 'count', received });
    }
  }, Number(process.env.BENCH_REPORT_MS || 20));

  async function ackLoop(payload, t0, t1) {
    let count = 0;
    const rtts = [];
    let errors = 0;
    await Promise.all(clients.map(async (c) => {
      while (nowUs() < t1 && c.connected) {
        const start = nowUs();
        try {
          await c.request('echo', { p: payload });
        } catch (e) {
          errors++;
          continue;
        }
        const end = nowUs();
        if (end >= t0 && end <= t1) {
          count++;
          rtts.push(end - start);
        }
      }
    }));
    return { count, rtts, errors };
  }

  process.on('message', async (m) => {
    let reply;
    switch (m.cmd) {
      case 'connect':
        if (m.product) {
          T_KEY = Buffer.from('"sequence_number":');
          COUNTED = PRODUCT_EVENTS;
        }
        reply = await connectMany(m.urls, m.n, m.room, m.concurrency, onEvent, clients, m.product);
        break;
      case 'collect_start':
        latencies = [];
        collecting = true;
        reply = {};
        break;
      case 'collect_stop':
        collecting = false;
        reply = { latencies };
        latencies = [];
        break;
      case 'ack':
        reply = await ackLoop(m.payload, m.t0, m.t1);
        break;
      case 'close_all': // every client drops its connection at once (the idle workload's teardown)
        for (const c of clients) c.close();
        reply = { closed: clients.length };
        break;
      case 'status':
        reply = { received, others, open: clients.filter((c) => c.connected).length,
          unexpectedCloses: clients.filter((c) => c.unexpectedClose).length };
        break;
      case 'exit':
        clearInterval(reporter);
        for (const c of clients) c.close();
        process.send({ id: m.id, ev: 'reply' }, () => process.exit(0));
        return;
      default:
        reply = { error: `unknown cmd ${m.cmd}` };
    }
    process.send({ ...reply, id: m.id, ev: 'reply' });
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------- coordinator process
class Workers {
  constructor(n, reportMs) {
    this.procs = [];
    this.counts = new Array(n).fill(0);
    this.pending = new Map();
    this.nextId = 1;
    this.wakers = [];
    for (let i = 0; i < n; i++) {
      const p = fork(__filename, [], { env: { ...process.env, BENCH_LOADGEN_WORKER: '1', BENCH_REPORT_MS: String(reportMs) } });
      p.on('message', (m) => {
        if (m.ev === 'count') {
          this.counts[i] = m.received;
          const w = this.wakers;
          this.wakers = [];
          for (const f of w) f();
        } else if (m.ev === 'reply') {
          const r = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (r) r(m);
        }
      });
      p.on('exit', (code) => {
        if (code && !this.exiting) {
          console.error(`loadgen worker ${i} exited with ${code}`);
          process.exit(1);
        }
      });
      this.procs.push(p);
    }
  }

  call(i, msg) {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.procs[i].send({ ...msg, id });
    });
  }

  all(msgFor) {
    return Promise.all(this.procs.map((_, i) => this.call(i, msgFor(i))));
  }

  delivered() {
    let s = 0;
    for (const c of this.counts) s += c;
    return s;
  }

  // Resolves on the next count report or after `ms`, whichever is first.
  wait(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wakers.push(() => { clearTimeout(t); resolve(); });
    });
  }

  async exit() {
    this.exiting = true;
    await Promise.all(this.procs.map((_, i) => this.call(i, { cmd: 'exit' })));
  }
}

function split(n, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

function stats(values) {
  if (values.length === 0) return { samples: 0 };
  const a = Float64Array.from(values).sort();
  const q = (p) => a[Math.min(a.length - 1, Math.floor(p * a.length))];
  let sum = 0;
  for (const v of a) sum += v;
  return {
    samples: a.length,
    p50_ms: q(0.5) / 1000, p90_ms: q(0.9) / 1000, p99_ms: q(0.99) / 1000,
    max_ms: a[a.length - 1] / 1000, mean_ms: sum / a.length / 1000,
  };
}

function connectSummary(replies) {
  const ok = replies.reduce((s, r) => s + r.ok, 0);
  const errors = replies.reduce((s, r) => s + r.errors, 0);
  const t0 = Math.min(...replies.map((r) => r.t0));
  const t1 = Math.max(...replies.map((r) => r.tLast));
  const seconds = Math.max(1e-6, (t1 - t0) / 1e6);
  const lastError = replies.map((r) => r.lastError).filter(Boolean)[0] || '';
  const perServer = replies[0].perUrl.map((_, u) => replies.reduce((s, r) => s + r.perUrl[u], 0));
  return { ok, errors, lastError, seconds, per_s: ok / seconds, per_server: perServer };
}

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const urls = (cfg.ports || [cfg.port]).map((p) => `ws://127.0.0.1:${p}/socket.io/?EIO=4&transport=websocket`);
  const url = urls[0]; // the publisher's
  const stdin = readline.createInterface({ input: process.stdin });
  const lines = stdin[Symbol.asyncIterator]();
  const mark = async (name) => {
    process.stdout.write(`MARK ${name}\n`);
    const r = await lines.next();
    if (r.done) throw new Error('driver went away');
  };
  const workers = new Workers(cfg.loadgen_workers, cfg.report_interval_ms);
  const payload = 'x'.repeat(cfg.payload_bytes);
  const result = { workload: cfg.workload, n: cfg.n, workers: cfg.loadgen_workers };
  const concurrency = Math.max(1, Math.floor(cfg.connect_concurrency / cfg.loadgen_workers));

  if (cfg.workload === 'broadcast') {
    const N = cfg.n;
    const room = 'bench';
    const parts = split(N, cfg.loadgen_workers);
    const product = cfg.product || null;
    const conn = connectSummary(await workers.all((i) => ({ cmd: 'connect', urls, n: parts[i], room, concurrency, product })));
    result.connect = conn;
    if (conn.ok !== N) throw new Error(`only ${conn.ok}/${N} subscribers connected: ${conn.lastError}`);
    const publisher = product
      ? new Client(url, () => {}, '/orchestrator', { token: product.orchestrator })
      : new Client(url, () => {});
    await publisher.connect();
    let sent = 0;
    let expected = 0; // deliveries owed for what was sent so far
    const onProject = parts.reduce((s, p) => s + Math.ceil(p / 2), 0);
    const send = () => {
      if (!product) {
        publisher.emit('broadcast', { t: nowUs(), room, payload });
        expected += N;
      } else if (sent % 10 === 9) { // one in ten is a state_change: /project subscribers only
        publisher.emit('publish', { event: 'state_change', data: {
          project_name: product.project, old_state: 'IDLE', new_state: 'BACKLOG_READY',
          timestamp: new Date().toISOString(), triggered_by: 'bot', command: '/epic' } });
        expected += onProject;
      } else { // test_output: every subscriber; its sequence_number carries the send time
        publisher.emit('publish', { event: 'test_output', data: {
          project_name: product.project, cycle_id: 'c1', output_type: 'stdout', content: payload,
          timestamp: new Date().toISOString(), sequence_number: nowUs() } });
        expected += N;
      }
      sent++;
    };
    const window = Math.max(cfg.window_broadcasts * N, cfg.window_deliveries);
    const pump = async (seconds) => {
      const end = nowUs() + seconds * 1e6;
      while (nowUs() < end) {
        while (expected - workers.delivered() < window) send();
        await workers.wait(5);
      }
    };
    const drain = async () => {
      const end = nowUs() + cfg.drain_timeout_s * 1e6;
      while (workers.delivered() < expected && nowUs() < end) await workers.wait(20);
      await sleep(30); // one more count report
      return expected - workers.delivered();
    };

    // Saturation: keep `window` deliveries outstanding, count what the subscribers receive.
    await pump(cfg.warmup_s);
    await mark('sat_start');
    const d0 = workers.delivered();
    const t0 = nowUs();
    const s0 = sent;
    await pump(cfg.duration_s);
    const d1 = workers.delivered();
    const t1 = nowUs();
    await mark('sat_end');
    const seconds = (t1 - t0) / 1e6;
    result.saturation = {
      seconds, deliveries: d1 - d0, deliveries_per_s: (d1 - d0) / seconds,
      broadcasts_per_s: (sent - s0) / seconds, window_deliveries: window,
    };
    result.saturation.undelivered_after_drain = await drain();

    // Latency at a fixed sustained rate (the same for every server), paced on an absolute schedule.
    const perSecond = cfg.sustained_deliveries_per_s / N;
    const count = Math.max(cfg.min_latency_broadcasts, Math.round(cfg.latency_duration_s * perSecond));
    const intervalUs = 1e6 / perSecond;
    await workers.all(() => ({ cmd: 'collect_start' }));
    await mark('lat_start');
    const start = nowUs();
    for (let i = 0; i < count; i++) {
      const due = start + i * intervalUs;
      for (let wait = due - nowUs(); wait > 0; wait = due - nowUs()) await sleep(Math.max(0, Math.floor(wait / 1000)));
      send();
    }
    const undelivered = await drain();
    await mark('lat_end');
    const lat = [];
    for (const r of await workers.all(() => ({ cmd: 'collect_stop' }))) for (const v of r.latencies) lat.push(v);
    result.latency = {
      sustained_deliveries_per_s: cfg.sustained_deliveries_per_s, broadcasts: count,
      undelivered_after_drain: undelivered, ...stats(lat),
    };
    publisher.close();
  } else if (cfg.workload === 'ack') {
    const parts = split(cfg.n, cfg.loadgen_workers);
    const conn = connectSummary(await workers.all((i) => ({ cmd: 'connect', urls, n: parts[i], room: null, concurrency })));
    result.connect = conn;
    if (conn.ok !== cfg.n) throw new Error(`only ${conn.ok}/${cfg.n} clients connected: ${conn.lastError}`);
    await mark('ack_start');
    const t0 = nowUs() + cfg.warmup_s * 1e6;
    const t1 = t0 + cfg.duration_s * 1e6;
    const pending = workers.all(() => ({ cmd: 'ack', payload, t0, t1 }));
    // the server's CPU time is read over the counted seconds only, not the warm-up
    await sleep(Math.max(0, t0 - nowUs()) / 1000);
    await mark('ack_t0');
    await sleep(Math.max(0, t1 - nowUs()) / 1000);
    await mark('ack_t1');
    const replies = await pending;
    await mark('ack_end');
    const rtts = [];
    for (const r of replies) for (const v of r.rtts) rtts.push(v);
    const count = replies.reduce((s, r) => s + r.count, 0);
    result.ack = {
      clients: cfg.n, seconds: cfg.duration_s, acks: count, acks_per_s: count / cfg.duration_s,
      errors: replies.reduce((s, r) => s + r.errors, 0), ...stats(rtts),
    };
  } else if (cfg.workload === 'idle') {
    // A few warm-up connections first, so one-time costs are not charged to the N measured ones.
    // product: each client connects with its token and recovery on and subscribes, as in the broadcast workload
    const product = cfg.product || null;
    const warm = connectSummary(await workers.all(() => ({ cmd: 'connect', urls, n: cfg.idle_warm_per_worker, room: null, concurrency, product })));
    if (warm.errors) throw new Error(`warm-up connections failed: ${warm.lastError}`);
    await sleep(cfg.settle_s * 1000);
    await mark('idle_before');
    const parts = split(cfg.n, cfg.loadgen_workers);
    const conn = connectSummary(await workers.all((i) => ({ cmd: 'connect', urls, n: parts[i], room: null, concurrency, product })));
    if (conn.ok !== cfg.n) throw new Error(`only ${conn.ok}/${cfg.n} idle clients connected: ${conn.lastError}`);
    await mark('idle_connected');
    await sleep(cfg.settle_s * 1000);
    await mark('idle_after');
    const status = await workers.all(() => ({ cmd: 'status' }));
    result.idle = {
      connections: conn.ok, setup_seconds: conn.seconds, setup_per_s: conn.per_s,
      open_after_settle: status.reduce((s, r) => s + r.open, 0) - warm.ok,
    };
    // Teardown: all N + warm-up clients drop at once; the driver takes `idle_closed` once the
    // server's CPU has gone quiet, i.e. once it has handled every disconnect.
    await mark('idle_closing');
    const closed = await workers.all(() => ({ cmd: 'close_all' }));
    result.idle.closed = closed.reduce((s, r) => s + r.closed, 0);
    await mark('idle_closed');
  } else {
    throw new Error(`unknown workload ${cfg.workload}`);
  }

  const status = await workers.all(() => ({ cmd: 'status' }));
  result.unexpected_closes = status.reduce((s, r) => s + r.unexpectedCloses, 0);
  result.other_events = status.reduce((s, r) => s + r.others, 0);
  await workers.exit();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

if (process.env.BENCH_LOADGEN_WORKER) {
  runWorker();
} else {
  const hardLimit = setTimeout(() => {
    console.error('loadgen: time limit reached');
    process.exit(3);
  }, 600000);
  hardLimit.unref();
  main().catch((e) => {
    console.error(`loadgen: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
}
