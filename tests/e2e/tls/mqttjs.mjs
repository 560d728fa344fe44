// One MQTT.js client over mqtts:// for the TLS suite: connect with a CA,
// certificate and key, subscribe, publish, and wait for the message back.
//
// Usage: node mqttjs.mjs JSON
//   JSON: {"port", "ca", "cert", "key", "clientId", "version" (4|5),
//          "subscribe", "publish", "payload", "qos", "expect" (messages to wait for)}
// Prints one JSON line: {"connected", "granted", "received": [[topic, payload]],
// "error"}. Exits 0 when every step worked, 1 otherwise.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const mqtt = require('../node_modules/mqtt');

const args = JSON.parse(process.argv[2]);
const result = { connected: false, granted: null, received: [], error: null };
const TIMEOUT_MS = 10000;

function finish(code) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(code);
}

const timer = setTimeout(() => {
  result.error = 'timed out';
  finish(1);
}, TIMEOUT_MS);

const client = mqtt.connect(`mqtts://127.0.0.1:${args.port}`, {
  clientId: args.clientId,
  protocolVersion: args.version || 5,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  clean: true,
  ca: fs.readFileSync(args.ca),
  cert: args.cert ? fs.readFileSync(args.cert) : undefined,
  key: args.key ? fs.readFileSync(args.key) : undefined,
  rejectUnauthorized: true,
});

client.on('error', (err) => {
  result.error = String(err && err.message ? err.message : err);
  clearTimeout(timer);
  client.end(true);
  finish(1);
});

client.on('message', (topic, payload) => {
  result.received.push([topic, payload.toString()]);
  if (result.received.length >= (args.expect ?? 1)) {
    clearTimeout(timer);
    client.end(false, {}, () => finish(0));
  }
});

client.on('connect', () => {
  result.connected = true;
  const qos = args.qos ?? 1;
  client.subscribe(args.subscribe, { qos }, (err, granted) => {
    if (err) {
      result.error = `subscribe: ${err.message}`;
      finish(1);
    }
    result.granted = granted.map((g) => g.qos);
    client.publish(args.publish, args.payload, { qos }, (perr) => {
      if (perr) {
        result.error = `publish: ${perr.message}`;
        finish(1);
      }
      if ((args.expect ?? 1) === 0) {
        clearTimeout(timer);
        client.end(false, {}, () => finish(0));
      }
    });
  });
});
