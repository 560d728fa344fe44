// The npm coap client against vigil's CoAP front end: PUT and GET of a
// /ps/ topic over IPv4 and IPv6, a NON POST, and an observation that gets a
// message published with MQTT.js. Run by tests/e2e/coap/run.py with
// VIGIL_TEST_COAP_PORT, VIGIL_TEST_COAP_PORT6 and VIGIL_TEST_PORT (MQTT);
// prints "ok <step>" per step and exits 1 on the first failure.
import { createRequire } from 'node:module'
import mqtt from 'mqtt'

const require = createRequire(import.meta.url)
const coap = require('coap')

const port = Number(process.env.VIGIL_TEST_COAP_PORT)
const port6 = Number(process.env.VIGIL_TEST_COAP_PORT6)
const mqttPort = Number(process.env.VIGIL_TEST_PORT)

function request (params, payload) {
  return new Promise((resolve, reject) => {
    const req = coap.request({ agent: false, ...params })
    const timer = setTimeout(() => reject(new Error(`no response to ${params.method} ${params.pathname}`)), 10000)
    req.on('response', (res) => {
      clearTimeout(timer)
      resolve(res)
    })
    req.on('error', reject)
    if (payload !== undefined) req.write(payload)
    req.end()
  })
}

function expect (cond, what) {
  if (!cond) throw new Error(what)
}

async function putGet () {
  let res = await request({ hostname: '127.0.0.1', port, method: 'PUT', pathname: '/ps/e2e/node/put' }, 'from node')
  expect(res.code === '2.04', `PUT code ${res.code}`)
  console.log('ok put')
  res = await request({ hostname: '127.0.0.1', port, method: 'GET', pathname: '/ps/e2e/node/put' })
  expect(res.code === '2.05', `GET code ${res.code}`)
  expect(res.payload.toString() === 'from node', `GET payload ${res.payload}`)
  res = await request({ hostname: '::1', port: port6, method: 'GET', pathname: '/ps/e2e/node/put' })
  expect(res.payload.toString() === 'from node', `GET over IPv6 payload ${res.payload}`)
  console.log('ok get')
  res = await request({ hostname: '127.0.0.1', port, method: 'POST', pathname: '/ps/e2e/node/post', confirmable: false }, 'posted')
  expect(res.code === '2.04', `NON POST code ${res.code}`)
  console.log('ok post')
}

async function observe () {
  const client = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'coap-node-pub' })
  await new Promise((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  const res = await request({ hostname: '127.0.0.1', port, method: 'GET', pathname: '/ps/e2e/node/obs', observe: true })
  expect(res.code === '2.05', `observe code ${res.code}`)
  const got = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no notification within 10 s')), 10000)
    res.on('data', (chunk) => {
      if (chunk.length === 0) return
      clearTimeout(timer)
      resolve(chunk.toString())
    })
    setTimeout(() => client.publish('e2e/node/obs', 'from mqtt', { qos: 1 }), 300)
  })
  expect(got === 'from mqtt', `notification ${got}`)
  res.close()
  await client.endAsync()
  console.log('ok observe')
}

try {
  await putGet()
  await observe()
  process.exit(0)
} catch (err) {
  console.error(`coap.mjs: ${err.message}`)
  process.exit(1)
}
