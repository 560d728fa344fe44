// End-to-end tests with MQTT.js (npm "mqtt", pinned in tests/e2e/package.json).
//
// Run through tests/lib/with_broker.py, which starts the broker and sets
// VIGIL_TEST_PORT, VIGIL_TEST_EVENTS, VIGIL_TEST_TARGET and
// VIGIL_TEST_SUITE_DIR. Results use the same format as the Python suites:
// "PASS name" / "FAIL name (log: path)" on stdout and tab-separated lines in
// VIGIL_TEST_RESULTS. Optional arguments filter cases by name.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mqtt = require('../node_modules/mqtt');

const PORT = Number(process.env.VIGIL_TEST_PORT);
const TARGET = process.env.VIGIL_TEST_TARGET || 'vigil';
const EVENTS = process.env.VIGIL_TEST_EVENTS;
const LOG_DIR = process.env.VIGIL_TEST_SUITE_DIR || '/tmp/vigil-test-logs/e2e-node';
const RESULTS = process.env.VIGIL_TEST_RESULTS;
const SUITE = 'e2e/node';
const CASE_TIMEOUT_MS = 20000;

const cases = [];
function test(name, fn, { only } = {}) {
  cases.push({ number: cases.length + 1, name, fn, only });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

function readEvents() {
  if (TARGET !== 'vigil' || !EVENTS || !fs.existsSync(EVENTS)) return [];
  return fs.readFileSync(EVENTS, 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

// Per-case state: a log, the clients to close, and the events to expect.
class Ctx {
  constructor(c) {
    this.prefix = `node${c.number}`;
    this.logPath = path.join(LOG_DIR, `${String(c.number).padStart(3, '0')}-${slug(c.name)}.log`);
    this.lines = [];
    this.clients = [];
    this.expected = [];
    // Event types each client's actions must cause, filled in by connect().
    this.caused = new Map();
    this.eventsBefore = readEvents().length;
  }

  note(clientId, type) {
    if (!this.caused.has(clientId)) this.caused.set(clientId, new Set());
    this.caused.get(clientId).add(type);
  }

  // Wraps the client's calls so that each one records the event it causes.
  track(client, clientId) {
    const publish = client.publishAsync.bind(client);
    client.publishAsync = async (...args) => {
      const result = await publish(...args);
      this.note(clientId, 'publish');
      return result;
    };
    const subscribe = client.subscribeAsync.bind(client);
    client.subscribeAsync = async (...args) => {
      const granted = await subscribe(...args);
      if (granted.every((g) => g.qos < 128)) this.note(clientId, 'subscribe');
      return granted;
    };
    const end = client.endAsync.bind(client);
    client.endAsync = async (...args) => {
      await end(...args);
      if (!this.closing) this.note(clientId, 'disconnect');
    };
  }

  log(...parts) {
    this.lines.push(`[${new Date().toISOString()}] ${parts.map(String).join(' ')}`);
  }

  expect(clientId, ...types) {
    this.expected.push([clientId, types]);
  }

  // Connects and waits for CONNACK; messages are queued on client.inbox.
  async connect(clientId, opts = {}) {
    const options = {
      clientId,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clean: true,
      ...opts,
    };
    // The handlers are attached before CONNECT is sent because queued
    // messages of a persistent session follow the CONNACK at once.
    const client = mqtt.connect(`mqtt://127.0.0.1:${PORT}`, options);
    this.clients.push(client);
    client.inbox = [];
    client.waiters = [];
    const connected = new Promise((resolve, reject) => {
      client.once('connect', (connack) => resolve(connack));
      client.once('error', reject);
      client.once('close', () => reject(new Error(`${clientId}: connection closed before CONNACK`)));
    });
    client.on('message', (topic, payload, packet) => {
      const msg = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain,
        properties: packet.properties || {} };
      this.log(`${clientId} received ${JSON.stringify(msg)}`);
      client.inbox.push(msg);
      client.waiters.splice(0).forEach((w) => w());
    });
    client.on('error', (err) => this.log(`${clientId} error: ${err.message}`));
    client.connack = await connected;
    this.note(clientId, 'auth_success');
    this.track(client, clientId);
    this.log(`${clientId} connected v${options.protocolVersion} session present ${client.connack.sessionPresent}`);
    return client;
  }

  async recv(client, count, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (client.inbox.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`${client.options.clientId}: ${client.inbox.length} of ${count} messages`
          + ` within ${timeoutMs} ms`);
      }
      await new Promise((resolve) => {
        client.waiters.push(resolve);
        setTimeout(resolve, left);
      });
    }
    return client.inbox.splice(0, count);
  }

  async expectNothing(client, ms = 700) {
    await sleep(ms);
    assertEqual(client.inbox.map((m) => m.payload), [], `unexpected messages for ${client.options.clientId}`);
  }

  async close() {
    this.closing = true;
    for (const client of this.clients) {
      try {
        await client.endAsync(true);
      } catch (err) {
        this.log(`close failed: ${err.message}`);
      }
    }
  }

  async checkEvents() {
    if (TARGET !== 'vigil') return;
    const all = [...this.expected];
    for (const [clientId, types] of this.caused) all.push([clientId, [...types]]);
    for (const [clientId, types] of all) {
      const deadline = Date.now() + 3000;
      for (;;) {
        const seen = new Set(readEvents().slice(this.eventsBefore)
          .filter((e) => e.client_id === clientId).map((e) => e.type));
        if (types.every((t) => seen.has(t))) break;
        if (Date.now() > deadline) {
          throw new Error(`events for ${clientId}: expected ${types.join(',')}, got ${[...seen].join(',')}`);
        }
        await sleep(50);
      }
    }
  }
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

function record(kind, name, logPath) {
  if (RESULTS) fs.appendFileSync(RESULTS, `${kind}\t${name}\t${logPath}\n`);
}

// ---------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------

for (const version of [4, 5]) {
  const v = version === 5 ? 'v5' : 'v311';
  for (const qos of [0, 1, 2]) {
    test(`${v} pub/sub QoS ${qos}`, async (ctx) => {
      const topic = `${ctx.prefix}/q`;
      const sub = await ctx.connect(`${ctx.prefix}-sub`, { protocolVersion: version });
      const granted = await sub.subscribeAsync(topic, { qos });
      assertEqual(granted.map((g) => g.qos), [qos], 'granted QoS');
      const pub = await ctx.connect(`${ctx.prefix}-pub`, { protocolVersion: version });
      for (let i = 0; i < 5; i += 1) await pub.publishAsync(topic, `m${i}`, { qos });
      const got = await ctx.recv(sub, 5);
      assertEqual(got.map((m) => m.payload), ['m0', 'm1', 'm2', 'm3', 'm4'], 'payloads in order');
      assertEqual([...new Set(got.map((m) => m.qos))], [qos], 'delivered QoS');
      await pub.endAsync();
      ctx.expect(`${ctx.prefix}-sub`, 'auth_success', 'subscribe');
      ctx.expect(`${ctx.prefix}-pub`, 'auth_success', 'publish', 'disconnect');
    });
  }

  test(`${v} retained message`, async (ctx) => {
    const topic = `${ctx.prefix}/r`;
    const pub = await ctx.connect(`${ctx.prefix}-pub`, { protocolVersion: version });
    await pub.publishAsync(topic, 'first', { qos: 1, retain: true });
    await pub.publishAsync(topic, 'latest', { qos: 1, retain: true });
    const sub = await ctx.connect(`${ctx.prefix}-sub`, { protocolVersion: version });
    await sub.subscribeAsync(topic, { qos: 1 });
    const [m] = await ctx.recv(sub, 1);
    assertEqual([m.payload, m.retain], ['latest', true], 'retained payload and flag');
    await pub.publishAsync(topic, '', { qos: 1, retain: true });
    await ctx.recv(sub, 1);
    const late = await ctx.connect(`${ctx.prefix}-late`, { protocolVersion: version });
    await late.subscribeAsync(topic, { qos: 1 });
    await ctx.expectNothing(late);
  });

  test(`${v} persistent session reconnect`, async (ctx) => {
    const topic = `${ctx.prefix}/p`;
    const id = `${ctx.prefix}-sub`;
    const persistent = version === 5
      ? { clean: false, properties: { sessionExpiryInterval: 3600 } }
      : { clean: false };
    const sub = await ctx.connect(id, { protocolVersion: version, ...persistent });
    await sub.subscribeAsync(topic, { qos: 1 });
    await sub.endAsync();
    const pub = await ctx.connect(`${ctx.prefix}-pub`, { protocolVersion: version });
    for (let i = 0; i < 3; i += 1) await pub.publishAsync(topic, `off${i}`, { qos: i === 2 ? 2 : 1 });
    const again = await ctx.connect(id, { protocolVersion: version, ...persistent });
    assertEqual(again.connack.sessionPresent, true, 'session present');
    const got = await ctx.recv(again, 3);
    assertEqual(got.map((m) => m.payload).sort(), ['off0', 'off1', 'off2'], 'queued messages');
    await again.endAsync();
    const clean = await ctx.connect(id, { protocolVersion: version, clean: true });
    await clean.endAsync();
    ctx.expect(id, 'auth_success', 'subscribe', 'disconnect');
  });
}

test('v5 shared subscription', async (ctx) => {
  const topic = `${ctx.prefix}/s`;
  const members = [];
  for (const name of ['a', 'b']) {
    const c = await ctx.connect(`${ctx.prefix}-${name}`);
    await c.subscribeAsync(`$share/team/${topic}`, { qos: 1 });
    members.push(c);
  }
  const pub = await ctx.connect(`${ctx.prefix}-pub`);
  const n = 10;
  for (let i = 0; i < n; i += 1) await pub.publishAsync(topic, String(i), { qos: 1 });
  const deadline = Date.now() + 5000;
  while (members[0].inbox.length + members[1].inbox.length < n && Date.now() < deadline) {
    await sleep(50);
  }
  await sleep(300);
  const counts = members.map((c) => c.inbox.length);
  const all = members.flatMap((c) => c.inbox.map((m) => Number(m.payload))).sort((x, y) => x - y);
  ctx.log(`shared counts ${counts}`);
  assertEqual(all, [...Array(n).keys()], 'each message to exactly one member');
  assert(counts[0] > 0, `member a got no message: ${counts}`);
  assert(counts[1] > 0, `member b got no message: ${counts}`);
});

test('v5 topic alias from client', async (ctx) => {
  const topic = `${ctx.prefix}/alias`;
  const sub = await ctx.connect(`${ctx.prefix}-sub`);
  await sub.subscribeAsync(topic, { qos: 1 });
  const pub = await ctx.connect(`${ctx.prefix}-pub`);
  await pub.publishAsync(topic, 'one', { qos: 1, properties: { topicAlias: 2 } });
  await pub.publishAsync('', 'two', { qos: 1, properties: { topicAlias: 2 } });
  const got = await ctx.recv(sub, 2);
  assertEqual(got.map((m) => [m.topic, m.payload]), [[topic, 'one'], [topic, 'two']], 'aliased messages');
});

test('v5 topic alias to client', async (ctx) => {
  // The client allows aliases; whether the server uses them is its choice,
  // but MQTT.js must always see the full topic.
  const topic = `${ctx.prefix}/alias-in`;
  const sub = await ctx.connect(`${ctx.prefix}-sub`, { properties: { topicAliasMaximum: 5 } });
  await sub.subscribeAsync(topic, { qos: 0 });
  const pub = await ctx.connect(`${ctx.prefix}-pub`);
  for (let i = 0; i < 3; i += 1) await pub.publishAsync(topic, `x${i}`, { qos: 1 });
  const got = await ctx.recv(sub, 3);
  assertEqual(got.map((m) => m.topic), [topic, topic, topic], 'topics');
});

test('v5 user properties', async (ctx) => {
  const topic = `${ctx.prefix}/up`;
  const sub = await ctx.connect(`${ctx.prefix}-sub`);
  await sub.subscribeAsync(topic, { qos: 1 });
  const pub = await ctx.connect(`${ctx.prefix}-pub`);
  await pub.publishAsync(topic, '98', {
    qos: 1,
    properties: { userProperties: { unit: 'percent', ward: ['icu', 'icu3'] }, contentType: 'text/plain' },
  });
  const [m] = await ctx.recv(sub, 1);
  assertEqual(m.properties.userProperties, { unit: 'percent', ward: ['icu', 'icu3'] }, 'user properties');
  assertEqual(m.properties.contentType, 'text/plain', 'content type');
});

// ---------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------

async function runCase(c) {
  const ctx = new Ctx(c);
  let error = null;
  let timer;
  try {
    await Promise.race([
      (async () => {
        await c.fn(ctx);
        await ctx.checkEvents();
      })(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    error = err;
    ctx.log(`FAILED: ${err.stack || err}`);
  } finally {
    clearTimeout(timer);
    await ctx.close();
  }
  fs.writeFileSync(ctx.logPath, `${ctx.lines.join('\n')}\n`);
  return { ok: error === null, logPath: ctx.logPath };
}

async function main() {
  if (!PORT) {
    console.error('VIGIL_TEST_PORT is not set: run this through tests/lib/with_broker.py');
    process.exit(2);
  }
  fs.mkdirSync(LOG_DIR, { recursive: true });
  const filters = process.argv.slice(2).concat(process.env.VIGIL_TEST_FILTER || []).filter(Boolean);
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const c of cases) {
    const full = `${SUITE}/${String(c.number).padStart(3, '0')} ${c.name}`;
    if (filters.length && !filters.some((f) => full.includes(f))) continue;
    if (c.only && c.only !== TARGET) {
      console.log(`SKIP ${full} (runs only against ${c.only})`);
      record('skip', full, '');
      skipped += 1;
      continue;
    }
    const start = Date.now();
    const { ok, logPath } = await runCase(c);
    if (ok) {
      passed += 1;
      console.log(`PASS ${full} (${((Date.now() - start) / 1000).toFixed(1)} s)`);
      record('pass', full, logPath);
    } else {
      failed += 1;
      console.log(`FAIL ${full} (log: ${logPath})`);
      record('fail', full, logPath);
    }
  }
  console.log(`${SUITE}: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed ? 1 : 0);
}

main();
