#!/usr/bin/env node
// Drives xapid with Xen Orchestra's own XenAPI client, the npm package `xen-api`, over both of
// its transports (JSON-RPC and XML-RPC, and the `auto` negotiation between them), the way
// xo-server uses it: connect, plain calls, the object cache fed by event.from, barriers and
// tasks; and, given a pool's member, follows HOST_IS_SLAVE to its master.
//
// Usage:
//   xo_client_test.mjs PATH_TO_XAPID [--trace]          starts xapid on a free loopback port
//   xo_client_test.mjs --url http://HOST:PORT --password PW [--trace]
//
// Prints one PASS/FAIL line per check and a summary per section; exits non-zero if any check
// failed. --trace (or XAPID_XO_TRACE=1) prints every RPC the client makes, with the shapes of
// its arguments and answer.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'

import { createClient } from 'xen-api'

const PASSWORD = 'xo-integration-secret'
const TRANSPORTS = ['json-rpc', 'xml-rpc']
const NOT_SERVED = new Set(['NOT_IMPLEMENTED', 'MESSAGE_METHOD_UNKNOWN'])

// ---------------------------------------------------------------------------------------------
// command line

function parseArgs(argv) {
  const opts = { trace: process.env.XAPID_XO_TRACE === '1' }
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i]
    if (a === '--trace') opts.trace = true
    else if (a === '--url') opts.url = argv[++i]
    else if (a === '--password') opts.password = argv[++i]
    else if (a === '--help' || a === '-h') opts.help = true
    else if (opts.xapid === undefined && !a.startsWith('--')) opts.xapid = a
    else throw new Error(`unknown argument: ${a}`)
  }
  if (!opts.help && (opts.xapid === undefined) === (opts.url === undefined)) {
    throw new Error('give either PATH_TO_XAPID or --url URL --password PW')
  }
  return opts
}

// ---------------------------------------------------------------------------------------------
// the daemon

async function startDaemon(xapid, listen = '127.0.0.1:0', password = PASSWORD) {
  const dir = mkdtempSync(path.join(tmpdir(), 'xapid-xo-'))
  const proc = spawn(xapid, ['--data-dir', dir, '--listen', listen], {
    env: { ...process.env, XAPID_ROOT_PASSWORD: password },
    stdio: ['ignore', 'inherit', 'pipe'],
  })
  const tail = [] // the last lines of its log, shown if it dies
  const exited = new Promise(resolve => proc.on('exit', (code, signal) => resolve({ code, signal })))
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('xapid did not log xapid.ready within 30 s')), 30e3)
    // keep reading its stderr for the whole run, or a full pipe would block it
    readline.createInterface({ input: proc.stderr }).on('line', line => {
      tail.push(line)
      if (tail.length > 40) tail.shift()
      const m = /xapid\.ready listen=[0-9.]+:(\d+)/.exec(line)
      if (m !== null) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    proc.on('error', error => {
      clearTimeout(timer)
      reject(error)
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`xapid exited (${code ?? signal}) before it was ready:\n${tail.join('\n')}`))
    })
  })
  return { proc, dir, port, tail, exited }
}

async function stopDaemon(daemon) {
  daemon.proc.kill('SIGTERM')
  const timeout = sleep(30e3).then(() => null)
  const result = await Promise.race([daemon.exited, timeout])
  if (result === null) {
    daemon.proc.kill('SIGKILL')
    await daemon.exited
  }
  rmSync(daemon.dir, { recursive: true, force: true })
  return result
}

// ---------------------------------------------------------------------------------------------
// checks and their report

const results = []
let currentSection = ''

function describe(error) {
  if (error == null) return String(error)
  if (typeof error.code === 'string' && Array.isArray(error.params)) {
    const from = error.call?.method !== undefined ? ` (answer to ${error.call.method})` : ''
    return `${error.code}(${error.params.join(', ')})${from}`
  }
  return error.message ?? String(error)
}

async function check(name, fn, { timeout = 15e3 } = {}) {
  const section = currentSection
  let timer
  try {
    const detail = await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeout / 1e3} s`)), timeout)
      }),
    ])
    results.push({ section, name, ok: true })
    console.log(`PASS  [${section}] ${name}${detail ? ` — ${detail}` : ''}`)
    return true
  } catch (error) {
    results.push({ section, name, ok: false, why: describe(error) })
    console.log(`FAIL  [${section}] ${name}: ${describe(error)}`)
    return false
  } finally {
    clearTimeout(timer)
  }
}

function fail(name, why) {
  results.push({ section: currentSection, name, ok: false, why })
  console.log(`FAIL  [${currentSection}] ${name}: ${why}`)
}

function section(name) {
  currentSection = name
  console.log(`\n== ${name}`)
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

const isRef = v => typeof v === 'string' && v.startsWith('OpaqueRef:') && v !== 'OpaqueRef:NULL'

async function waitFor(what, predicate, timeout = 5e3) {
  const end = Date.now() + timeout
  for (;;) {
    const value = await predicate() // a predicate may ask the daemon
    if (value) return value
    if (Date.now() > end) throw new Error(`${what}: not seen within ${timeout / 1e3} s`)
    await sleep(50)
  }
}

// ---------------------------------------------------------------------------------------------
// what the client sends: every RPC goes through xapi._transport(method, args)

function shapeOf(v, depth = 0) {
  if (v === null) return 'nil'
  if (v === undefined) return 'undefined'
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]'
    if (depth >= 2) return `[${v.length} items]`
    return `[${shapeOf(v[0], depth + 1)}${v.length > 1 ? ` ×${v.length}` : ''}]`
  }
  switch (typeof v) {
    case 'string':
      return isRef(v) ? 'ref' : JSON.stringify(v.length > 40 ? v.slice(0, 37) + '...' : v)
    case 'number':
      return Number.isInteger(v) ? `int ${v}` : `float ${v}`
    case 'boolean':
      return String(v)
    case 'object': {
      if (v instanceof Date) return 'datetime'
      const keys = Object.keys(v)
      if (keys.length === 0) return '{}'
      if (keys.every(isRef)) return `{ref: ${depth >= 2 ? 'record' : shapeOf(v[keys[0]], depth + 1)}${keys.length > 1 ? ` ×${keys.length}` : ''}}`
      if (depth >= 2) return `{${keys.length} members}`
      const shown = keys.slice(0, 6).map(k => `${k}: ${shapeOf(v[k], depth + 1)}`)
      return `{${shown.join(', ')}${keys.length > 6 ? `, … ${keys.length} members` : ''}}`
    }
  }
  return typeof v
}

function traceClient(xapi, label, opts) {
  const log = []
  const inner = xapi._transport
  xapi._transport = async (method, args) => {
    const entry = { method, args, at: Date.now() }
    log.push(entry)
    const shownArgs =
      method === 'session.login_with_password'
        ? args.map((a, i) => (i === 1 ? '"***"' : shapeOf(a))).join(', ')
        : args.map(a => (a === xapi._sessionId ? 'session' : shapeOf(a))).join(', ')
    try {
      const result = await inner(method, args)
      entry.result = result
      if (opts.trace) console.log(`  rpc[${label}] ${method}(${shownArgs}) -> ${shapeOf(result)}`)
      return result
    } catch (error) {
      entry.error = error
      if (opts.trace) console.log(`  rpc[${label}] ${method}(${shownArgs}) -> error ${describe(error)}`)
      throw error
    }
  }
  return log
}

// the client reports trouble in its background loops with console.warn: keep it, one line each
const warnings = []
console.warn = (...args) => {
  const text = args.map(a => (a instanceof Error || a?.code !== undefined ? describe(a) : typeof a === 'string' ? a : shapeOf(a))).join(' ')
  const seen = warnings.find(w => w.section === currentSection && w.text === text)
  if (seen !== undefined) {
    ++seen.count
    return
  }
  warnings.push({ section: currentSection, text, count: 1 })
  console.log(`  [xen-api warned] ${text}`)
}
const warningText = ws => ws.map(w => (w.count > 1 ? `${w.text} (×${w.count})` : w.text)).join(' | ')
process.on('unhandledRejection', error => {
  fail('no unhandled rejection in the client', describe(error))
})

function makeClient(url, password, transport, watchEvents, opts, label) {
  const xapi = createClient({
    url,
    auth: { user: 'root', password },
    allowUnauthorized: true,
    ...(transport === 'auto' ? {} : { transport }),
    watchEvents,
  })
  const log = traceClient(xapi, label, opts)
  return { xapi, log }
}

const methodsOf = log => log.map(e => e.method)

// ---------------------------------------------------------------------------------------------
// sections

// Plain calls, no event watching (watchEvents: false).
async function callsSection(url, password, transport, opts, shared) {
  section(`calls/${transport}`)
  const { xapi, log } = makeClient(url, password, transport, false, opts, transport)
  const ints = transport === 'xml-rpc' ? 'string' : 'number' // XenAPI's XML-RPC sends ints as strings

  const connected = await check('connect: login, pool, types', async () => {
    await xapi.connect()
    assert(xapi.status === 'connected', `status ${xapi.status}`)
    assert(isRef(xapi.pool?.$ref), 'no pool after connect')
    return `RPCs: ${methodsOf(log).join(', ')}`
  })
  if (!connected) return

  await check("the classes the client derives from system.listMethods ('<class>.get_all_records') are real", async () => {
    const types = xapi._types
    for (const t of ['pool', 'host', 'network', 'VM', 'task', 'message']) assert(types.includes(t), `${t} missing`)
    const async = types.filter(t => t === 'Async').length
    assert(
      async === 0,
      `'Async' ×${async} among them: system.listMethods lists Async.<class>.get_all_records, which xapi does not ` +
        '(xapi has no Async form of get_all_records, get_record, get_all, get_by_uuid, get_by_name_label); ' +
        "so XO calls 'Async.get_all_records' and puts 'Async' in event.from's classes"
    )
    return `${types.length} classes`
  })

  let pool
  await check('pool.get_all_records', async () => {
    const pools = await xapi.call('pool.get_all_records')
    const refs = Object.keys(pools)
    assert(refs.length === 1 && refs[0] === xapi.pool.$ref, `pools ${refs}`)
    pool = pools[refs[0]]
    assert(isRef(pool.master), `master ${pool.master}`)
    assert(typeof pool.ha_host_failures_to_tolerate === ints, `ha_host_failures_to_tolerate is a ${typeof pool.ha_host_failures_to_tolerate}, not a ${ints}`)
    assert(typeof pool.other_config === 'object', 'other_config is not a struct')
  })
  if (pool === undefined) return

  await check('role.get_all_records, a table answered in pieces (chunked), reads back whole', async () => {
    // 1,300-odd roles: over a megabyte of XML, half that of JSON, sent as it is written.
    const roles = await xapi.call('role.get_all_records')
    const refs = await xapi.call('role.get_all')
    assert(Object.keys(roles).length === refs.length && refs.length > 1000, `${Object.keys(roles).length} of ${refs.length}`)
    assert(refs.every(r => typeof roles[r].name_label === 'string'), 'a record is missing')
    return `${refs.length} roles`
  })

  await check('session.get_this_host is the pool master', async () => {
    // xapi.call refuses session.*: this is the client's own lower-level path
    const host = await xapi._call('session.get_this_host', [xapi.sessionId, xapi.sessionId])
    assert(host === pool.master, `${host} is not the master ${pool.master}`)
  })

  await check('host.get_record (and the wrapped xapi.getRecord)', async () => {
    const host = await xapi.call('host.get_record', pool.master)
    assert(typeof host.uuid === 'string' && host.uuid.length === 36, `uuid ${host.uuid}`)
    assert(typeof host.address === 'string' && host.address !== '', `address ${host.address}`)
    assert(typeof host.API_version_major === ints, `API_version_major is a ${typeof host.API_version_major}`)
    const wrapped = await xapi.getRecord('host', pool.master)
    assert(wrapped.$ref === pool.master && wrapped.$type === 'host' && wrapped.$id === host.uuid, 'wrapped record')
    return `host ${host.name_label} at ${host.address}, API ${host.API_version_major}.${host.API_version_minor}`
  })

  let net
  const label = `xo net ${transport}`
  await check('network.create', async () => {
    net = await xapi.call('network.create', {
      name_label: label,
      name_description: 'made by xen-api',
      MTU: 1500,
      other_config: { origin: 'xo_client_test' },
      tags: [],
    })
    assert(isRef(net), `answer ${net}`)
  })
  if (net !== undefined) {
    shared.networks.push(net)
    await check('network.get_all_records shows the new network', async () => {
      const records = await xapi.call('network.get_all_records')
      const r = records[net]
      assert(r !== undefined, 'not in the answer')
      assert(r.name_label === label, `name_label ${r.name_label}`)
      assert(String(r.MTU) === '1500' && typeof r.MTU === ints, `MTU ${JSON.stringify(r.MTU)}`)
      assert(r.other_config.origin === 'xo_client_test', `other_config ${JSON.stringify(r.other_config)}`)
      const all = await xapi.getAllRecords('network')
      assert(all.some(n => n.$ref === net), 'xapi.getAllRecords misses it')
    })

    await check('setField and setFieldEntry (remove_from_<map> of a missing key, then add_to_<map>)', async () => {
      await xapi.setField('network', net, 'name_label', label + ' renamed')
      assert((await xapi.call('network.get_name_label', net)) === label + ' renamed', 'name_label not set')
      await xapi.setFieldEntry('network', net, 'other_config', 'xo:key', 'v1')
      await xapi.setFieldEntry('network', net, 'other_config', 'xo:key', 'v2')
      let oc = await xapi.call('network.get_other_config', net)
      assert(oc['xo:key'] === 'v2', `other_config ${JSON.stringify(oc)}`)
      await xapi.setFieldEntry('network', net, 'other_config', 'xo:key', null)
      oc = await xapi.call('network.get_other_config', net)
      assert(!('xo:key' in oc), `other_config ${JSON.stringify(oc)}`)
      await xapi.setField('network', net, 'name_label', label)
    })
  }

  await check('a XenAPI error reaches the caller as XapiError(code, params)', async () => {
    try {
      await xapi.call('network.get_record', 'OpaqueRef:no-such-network')
    } catch (error) {
      assert(error.code === 'HANDLE_INVALID', `code ${error.code}`)
      assert(JSON.stringify(error.params) === '["network","OpaqueRef:no-such-network"]', `params ${JSON.stringify(error.params)}`)
      return
    }
    throw new Error('no error')
  })

  await check('every real class the client would watch answers <class>.get_all_records', async () => {
    const types = [...new Set(xapi._types)].filter(t => t !== 'Async')
    const failed = []
    await Promise.all(
      types.map(t =>
        xapi.call(`${t}.get_all_records`).then(
          records => {
            if (records === null || typeof records !== 'object' || Array.isArray(records)) failed.push(`${t}: ${shapeOf(records)}`)
          },
          error => failed.push(`${t}: ${describe(error)}`)
        )
      )
    )
    assert(failed.length === 0, failed.join('; '))
    return `${types.length} classes`
  })

  await check('an ended session is renewed by a new login (SESSION_INVALID)', async () => {
    const old = xapi.sessionId
    await xapi._call('session.logout', [old])
    const pools = await xapi.call('pool.get_all')
    assert(pools.length === 1, `pools ${pools}`)
    assert(xapi.sessionId !== old, 'same session')
  })

  await check('disconnect (session.logout)', async () => {
    const n = log.length
    await xapi.disconnect()
    await waitFor('session.logout', () => log.slice(n).some(e => e.method === 'session.logout' && 'result' in e), 5e3)
  })
}

// The default transport: xen-api tries JSON-RPC (POST /jsonrpc) and falls back to XML-RPC
// (POST /xmlrpc) if the answer is not exactly application/json.
async function autoSection(url, password, opts) {
  section('auto')
  const { xapi, log } = makeClient(url, password, 'auto', false, opts, 'auto')
  await check('the default transport negotiates JSON-RPC', async () => {
    await xapi.connect()
    const pools = await xapi.call('pool.get_all_records')
    const pool = Object.values(pools)[0]
    assert(typeof pool.ha_host_failures_to_tolerate === 'number', 'ints arrive as strings: it fell back to XML-RPC')
    return `RPCs: ${methodsOf(log).join(', ')}`
  })
  await xapi.disconnect().catch(() => {})
}

// The object cache: event.inject for a token, <class>.get_all_records of every class, then
// event.from in a loop; barriers; tasks.
// Xen Orchestra's dashboards: xo-server's xapi-stats reads /rrd_updates through the client's
// getResource, with exactly this query, and finds each object's columns by the legend
// (AVERAGE:host:<uuid>:<source>, AVERAGE:vm:<uuid>:<source>).
async function statsSection(url, password, opts) {
  section('stats')
  const { xapi } = makeClient(url, password, 'json-rpc', false, opts, 'stats')
  await xapi.connect()
  const GIB = 1024 ** 3
  let vm
  try {
    vm = await xapi.call('VM.create', {
      name_label: 'xo stats', name_description: '', user_version: 1, is_a_template: false, affinity: 'OpaqueRef:NULL',
      memory_static_max: GIB, memory_dynamic_max: GIB, memory_dynamic_min: GIB, memory_static_min: GIB,
      VCPUs_params: {}, VCPUs_max: 2, VCPUs_at_startup: 2, actions_after_shutdown: 'destroy',
      actions_after_reboot: 'restart', actions_after_crash: 'restart', PV_bootloader: '', PV_kernel: '',
      PV_ramdisk: '', PV_args: '', PV_bootloader_args: '', PV_legacy_args: '', HVM_boot_policy: 'BIOS order',
      HVM_boot_params: { order: 'dc' }, platform: {}, PCI_bus: '', other_config: { 'xapid-sim-load': 'cpu=0.9' },
      recommendations: '',
    })
    await xapi.call('VM.start', vm, false, false)
    const vmUuid = await xapi.call('VM.get_uuid', vm)
    const host = xapi.pool.$master ?? (await xapi.getRecord('host', xapi.pool.master))
    const hostUuid = host.uuid
    await check('getResource /rrd_updates as xo-server asks it: the host\'s and the busy VM\'s columns', async () => {
      const read = async () => {
        // (xo-server names the host, and the client then addresses it on the standard port; this
        // daemon's port is not 80, so the connection's own URL is used, as for no host.)
        const response = await xapi.getResource('/rrd_updates', {
          query: { cf: 'AVERAGE', host: 'true', interval: 5, json: 'true', start: Math.floor(Date.now() / 1e3) - 120 },
        })
        return JSON.parse(await response.body.text())
      }
      const json = await waitFor('the VM\'s cpu0 column', async () => {
        const j = await read()
        return j.meta.legend.includes(`AVERAGE:vm:${vmUuid}:cpu0`) && j.data.length > 0 ? j : undefined
      }, 20e3)
      const { legend } = json.meta
      for (const column of [`AVERAGE:host:${hostUuid}:memory_free_kib`, `AVERAGE:host:${hostUuid}:cpu0`,
        `AVERAGE:vm:${vmUuid}:memory`]) assert(legend.includes(column), `no ${column} in ${legend.length} columns`)
      assert(Number(json.meta.step) === 5, `step ${json.meta.step}`)
      const row = json.data[0]
      assert(row.values.length === legend.length, 'a row has a value per column')
      const cpu = Number(row.values[legend.indexOf(`AVERAGE:vm:${vmUuid}:cpu0`)])
      assert(cpu > 0.75, `the busy VM's cpu0 is ${cpu}`)
      return `${legend.length} columns, ${json.data.length} rows, cpu0 ${cpu.toFixed(2)}`
    }, { timeout: 30e3 })
  } finally {
    if (vm !== undefined) {
      await xapi.call('VM.hard_shutdown', vm).catch(() => {})
      await xapi.call('VM.destroy', vm).catch(() => {})
    }
    await xapi.disconnect()
  }
}

async function eventsSection(url, password, transport, opts) {
  section(`events/${transport}`)
  const { xapi: plain } = makeClient(url, password, transport, false, opts, `${transport} plain`)
  await plain.connect()
  const poolRef = plain.pool.$ref

  // is event.* served at all?
  let served = true
  try {
    const token = await plain.call('event.inject', 'pool', poolRef)
    await plain.call('event.from', ['pool'], token, 0.1)
  } catch (error) {
    if (!NOT_SERVED.has(error?.code)) throw error
    served = false
    fail('events', `not served by this xapid build (${describe(error)})`)
    currentSection = `tasks/${transport}`
    fail('tasks', 'not checked: xen-api watches tasks through events')
  }
  if (!served) {
    await plain.disconnect().catch(() => {})
    return
  }

  // an empty map and an empty set: XML-RPC sends them as <struct /> and <array><data /></array>
  const before = await plain.call('network.create', { name_label: `before watching ${transport}`, MTU: 1500, other_config: {}, tags: [] })

  const { xapi, log } = makeClient(url, password, transport, undefined, opts, `${transport} watch`)
  const seen = { add: new Set(), update: new Set(), remove: new Set() }
  for (const action of Object.keys(seen)) {
    xapi.objects.on(action, items => {
      // keys are $id (the uuid); a removed item's value is gone
      for (const key of Object.keys(items)) seen[action].add(key)
    })
  }
  const eventsOf = () => log.filter(e => e.method === 'event.from' && e.result !== undefined)

  const fetched = await check('connect and the initial fetch (xapi.objectsFetched)', async () => {
    await xapi.connect()
    await xapi.objectsFetched
    const order = methodsOf(log)
    const fetches = order.filter(m => m.endsWith('.get_all_records')).length
    const first = [...new Set(order.filter(m => !m.endsWith('.get_all_records')))]
    return `${fetches} get_all_records calls; other RPCs in order: ${first.join(', ')}`
  }, { timeout: 30e3 })

  if (fetched) {
    await check('the cache holds the pool, its master host and a network made before connecting', async () => {
      assert(xapi.getObjectByRef(poolRef, undefined)?.$type === 'pool', 'no pool')
      const host = xapi.getObjectByRef(xapi.pool.master, undefined)
      assert(host?.$type === 'host', 'no master host')
      assert(xapi.getObjectByRef(before, undefined)?.$type === 'network', 'no network')
      assert(xapi.pool.$master === host, 'pool.$master does not resolve')
      return `${xapi.objects.size} objects`
    })

    let net
    await check('a network created after the initial fetch arrives by event.from', async () => {
      net = await plain.call('network.create', { name_label: `watched ${transport}`, MTU: 1500 })
      const object = await waitFor('the network in xapi.objects', () => xapi.getObjectByRef(net, undefined))
      assert(object.$type === 'network' && object.name_label === `watched ${transport}`, `object ${shapeOf({ ...object })}`)
      const event = eventsOf()
        .flatMap(e => e.result.events)
        .find(ev => ev.ref === net)
      assert(event !== undefined, 'it came in, but not through an event.from answer')
      assert(event.operation === 'add', `operation ${event.operation}`)
      return `event {class: ${JSON.stringify(event.class)}, operation: "add"}`
    })

    if (net !== undefined) {
      await check('a change of name_label arrives within 5 s', async () => {
        await plain.call('network.set_name_label', net, `renamed ${transport}`)
        await waitFor('the new name_label', () => xapi.getObjectByRef(net, undefined)?.name_label === `renamed ${transport}`)
        assert(seen.update.has(xapi.getObjectByRef(net).$id), "xapi.objects emitted no 'update'")
      })

      await check('destroying the network removes it from the cache', async () => {
        const id = xapi.getObjectByRef(net).$id
        await plain.call('network.destroy', net)
        await waitFor('the removal', () => xapi.getObjectByRef(net, undefined) === undefined)
        assert(seen.remove.has(id), "xapi.objects emitted no 'remove'")
      })
    }

    await check('xapi.barrier() (pool.add_to_other_config xo:barrier:*, seen back in a pool event)', async () => {
      await xapi.barrier()
    }, { timeout: 10e3 })

    await check('event.from answers {events, valid_ref_counts, token} the client can use', async () => {
      const calls = log.filter(e => e.method === 'event.from')
      assert(calls.length > 0, 'never called')
      const [session, classes, token, timeout] = calls[0].args
      assert(isRef(session) && Array.isArray(classes) && typeof token === 'string' && timeout === 60.1, 'unexpected arguments')
      const answers = eventsOf()
      assert(answers.length > 0, `no answer: ${describe(calls.find(e => e.error)?.error)}`)
      for (const { result } of answers) {
        assert(Array.isArray(result.events), 'events is not an array')
        assert(typeof result.token === 'string', 'token is not a string')
        assert(result.valid_ref_counts !== null && typeof result.valid_ref_counts === 'object', 'no valid_ref_counts')
        assert(
          typeof result.valid_ref_counts.task === 'number',
          `valid_ref_counts.task is ${shapeOf(result.valid_ref_counts.task)}: the client compares it with its task count ` +
            'using !== and refetches task.get_all_records after every event.from when it differs'
        )
        for (const ev of result.events) {
          assert(typeof ev.class === 'string' && isRef(ev.ref), `event ${shapeOf(ev)}`)
          assert(['add', 'mod', 'del'].includes(ev.operation), `operation ${ev.operation}`)
          if (ev.operation !== 'del') assert(ev.snapshot !== null && typeof ev.snapshot === 'object', `no snapshot: ${shapeOf(ev)}`)
        }
      }
      // the client makes one record class per type from the fields of the first record it sees,
      // so a snapshot must carry exactly the fields of <class>.get_all_records' records
      const fieldsOf = { __proto__: null }
      for (const e of log) {
        if (e.method.endsWith('.get_all_records') && e.result !== undefined) {
          const first = Object.values(e.result)[0]
          if (first !== undefined) fieldsOf[e.method.slice(0, -'.get_all_records'.length).toLowerCase()] = Object.keys(first).sort().join()
        }
      }
      let compared = 0
      for (const ev of answers.flatMap(a => a.result.events)) {
        const fields = fieldsOf[ev.class.toLowerCase()]
        if (ev.operation === 'del' || fields === undefined) continue
        const mine = Object.keys(ev.snapshot).sort().join()
        assert(mine === fields, `the snapshot of a ${ev.class} event has fields [${mine}], get_all_records has [${fields}]`)
        ++compared
      }
      assert(compared > 0, 'no snapshot to compare with get_all_records')
      const ev = answers.flatMap(a => a.result.events)[0]
      return `${answers.length} answers, ${compared} snapshots shaped like get_all_records; an event: ${shapeOf(ev)}`
    })

    await check('event.from holds the call while nothing changes (no busy polling)', async () => {
      await sleep(300)
      const n = log.filter(e => e.method === 'event.from').length
      await sleep(3e3)
      const calls = log.filter(e => e.method === 'event.from').length - n
      assert(calls <= 2, `${calls} event.from calls in 3 s of quiet: it answers at once instead of waiting for the timeout`)
      return `${calls} calls in 3 s`
    })

    const taskFetches = log.filter(e => e.method === 'task.get_all_records').length
    await check('the client did not refetch tasks after the initial fetch', async () => {
      assert(taskFetches <= 1, `task.get_all_records called ${taskFetches} times (valid_ref_counts.task disagrees with task.get_all_records)`)
    })

    // tasks: xo-server runs most actions with callAsync and watches the task in the cache
    currentSection = `tasks/${transport}`
    console.log(`\n== ${currentSection}`)
    let asyncServed = true
    try {
      const task = await plain.call('Async.network.create', { name_label: `async probe ${transport}` })
      assert(isRef(task), `Async.network.create answered ${shapeOf(task)}`)
      const record = await plain.call('task.get_record', task)
      assert(typeof record.status === 'string', 'Async.network.create did not answer a task ref')
    } catch (error) {
      if (!NOT_SERVED.has(error?.code)) {
        fail('Async.network.create answers a task', describe(error))
      } else {
        fail('async tasks', `not served by this xapid build (${describe(error)})`)
      }
      asyncServed = false
    }
    if (asyncServed) {
      await check("xapi.callAsync('network.create') resolves to the ref in the task's result", async () => {
        const net = await xapi.callAsync('network.create', { name_label: `async ${transport}`, MTU: 1500 })
        assert(isRef(net), `result ${shapeOf(net)}`)
        assert((await plain.call('network.get_name_label', net)) === `async ${transport}`, 'not that network')
        return `task.result parsed to ${shapeOf(net)}`
      })
    }
    await check('task.create gives a pending task the cache sees; task.destroy removes it', async () => {
      let task
      try {
        task = await plain.call('task.create', 'xo test task', 'made by xo_client_test')
      } catch (error) {
        throw NOT_SERVED.has(error?.code) ? new Error(`task.create: not served by this xapid build (${describe(error)})`) : error
      }
      const object = await waitFor('the task in xapi.objects', () => xapi.getObjectByRef(task, undefined))
      assert(object.status === 'pending', `status ${object.status}`)
      await plain.call('task.destroy', task)
      await waitFor('the removal of the task', () => xapi.getObjectByRef(task, undefined) === undefined)
    })
  }

  const mine = warnings.filter(w => w.section === `events/${transport}` || w.section === `tasks/${transport}`)
  section(`events/${transport}`)
  await check('the client warned about nothing while watching', async () => {
    assert(mine.length === 0, warningText(mine))
  })

  const rpcs = [...new Set(methodsOf(log))].filter(m => !m.endsWith('.get_all_records'))
  console.log(`  RPCs of the watching client (besides <class>.get_all_records): ${rpcs.join(', ')}`)
  await xapi.disconnect().catch(() => {})
  await plain.disconnect().catch(() => {})
}

// A pool of two hosts on 127.0.0.2 and .3 (the same ports for both, as deploy/pool-up runs
// them): the client is given the member's address, and must end up on the master, as xo-server
// does with a pool's slave (HOST_IS_SLAVE, followed); its calls then reach the member's VMs
// through the master.
async function freeOn(address, port) {
  return new Promise(resolve => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, address, () => server.close(() => resolve(true)))
  })
}

async function freePortTriple(addresses) {
  for (let attempt = 0; attempt < 200; ++attempt) {
    const port = 20000 + Math.floor(Math.random() * 30000)
    let free = true
    for (const a of addresses) for (const p of [port, port + 1, port + 2]) free = free && (await freeOn(a, p))
    if (free) return port
  }
  throw new Error('no port P with P, P+1 and P+2 free on ' + addresses.join(' and '))
}

async function poolSection(xapid, opts) {
  section('pool: the client given a member')
  const port = await freePortTriple(['127.0.0.2', '127.0.0.3'])
  const master = await startDaemon(xapid, `127.0.0.2:${port}`)
  const member = await startDaemon(xapid, `127.0.0.3:${port}`, 'the-members-own-secret')
  const memberUrl = `http://127.0.0.3:${port}`
  try {
    const joined = await check(
      'the second host joins the first (pool.join through the client) and restarts as its member; ' +
        'a client watching the master sees it arrive as events',
      async () => {
        // xo-server's way of following a pool: the client's object cache, kept by event.from
        const { xapi: onMaster } = makeClient(`http://127.0.0.2:${port}`, PASSWORD, 'json-rpc', undefined, opts, 'master')
        const added = new Set()
        onMaster.objects.on('add', items => {
          for (const item of Object.values(items)) if (item?.$type === 'host') added.add(item.address)
        })
        await onMaster.connect()
        await onMaster.objectsFetched
        try {
          assert(!added.has('127.0.0.3'), 'the member is a host of the pool before it joined')
          const { xapi } = makeClient(memberUrl, 'the-members-own-secret', 'json-rpc', false, opts, 'joiner')
          await xapi.connect()
          await xapi.call('pool.join', '127.0.0.2', 'root', PASSWORD).finally(() => xapi.disconnect().catch(() => {}))
          await waitFor('the joined host added to the watching client\'s objects', () => added.has('127.0.0.3'), 60e3)
          const host = onMaster.objects.all && Object.values(onMaster.objects.all).find(o => o.$type === 'host' && o.address === '127.0.0.3')
          assert(host !== undefined && isRef(host.$ref), 'the joined host is not in the client\'s cache')
        } finally {
          await onMaster.disconnect().catch(() => {})
        }
        // the member serves again once it logs xapid.ready a second time
        await waitFor('the member ready again', () => member.tail.filter(l => l.includes('xapid.ready')).length >= 2, 60e3)
      },
      { timeout: 150e3 }
    )
    if (!joined) return
    for (const transport of TRANSPORTS) {
      await check(`${transport}: connect to the member → HOST_IS_SLAVE followed → connected to the master`, async () => {
        const { xapi, log } = makeClient(memberUrl, PASSWORD, transport, false, opts, `member/${transport}`)
        try {
          await xapi.connect()
          assert(xapi.status === 'connected', `status ${xapi.status}`)
          // where its calls go now: the client's own URL (xen-api keeps it in _url)
          assert(xapi._url.hostname === '127.0.0.2', `the client is connected to ${xapi._url.hostname}, not the master`)
          const address = await xapi.call('host.get_address', xapi.pool.master)
          assert(address === '127.0.0.2', `the pool's master is at ${address}`)
          const hosts = await xapi.call('host.get_all_records')
          const memberRef = Object.keys(hosts).find(ref => hosts[ref].address === '127.0.0.3')
          assert(isRef(memberRef), 'the member is not among the hosts')
          return `RPCs: ${methodsOf(log).join(', ')}`
        } finally {
          await xapi.disconnect().catch(() => {})
        }
      })
    }
  } finally {
    await stopDaemon(member)
    await stopDaemon(master)
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (error) {
    console.error(`${error.message}\nusage: xo_client_test.mjs PATH_TO_XAPID [--trace] | --url URL --password PW [--trace]`)
    return 2
  }
  if (opts.help) {
    console.log('usage: xo_client_test.mjs PATH_TO_XAPID [--trace] | --url URL --password PW [--trace]')
    return 0
  }

  let daemon
  let url = opts.url
  let password = opts.password ?? PASSWORD
  if (opts.xapid !== undefined) {
    daemon = await startDaemon(opts.xapid)
    url = `http://127.0.0.1:${daemon.port}`
    console.log(`xapid ${opts.xapid} listening on ${url}`)
  }
  const shared = { networks: [] }

  try {
    for (const transport of TRANSPORTS) await callsSection(url, password, transport, opts, shared)
    await autoSection(url, password, opts)
    try {
      await statsSection(url, password, opts)
    } catch (error) {
      fail('stats section', describe(error))
    }
    for (const transport of TRANSPORTS) {
      try {
        await eventsSection(url, password, transport, opts)
      } catch (error) {
        fail('events section', describe(error))
      }
    }
    if (opts.xapid !== undefined) {
      try {
        await poolSection(opts.xapid, opts)
      } catch (error) {
        fail('pool section', describe(error))
      }
    }
  } finally {
    if (daemon !== undefined) {
      currentSection = 'daemon'
      console.log('\n== daemon')
      const exit = await stopDaemon(daemon)
      if (exit?.code === 0) {
        results.push({ section: 'daemon', name: 'stops cleanly on SIGTERM', ok: true })
        console.log('PASS  [daemon] stops cleanly on SIGTERM')
      } else {
        fail('stops cleanly on SIGTERM', `exit ${JSON.stringify(exit)}; last log lines:\n${daemon.tail.join('\n')}`)
      }
    }
  }

  console.log('\n== summary')
  const sections = [...new Set(results.map(r => r.section))]
  for (const s of sections) {
    const rs = results.filter(r => r.section === s)
    const failed = rs.filter(r => !r.ok)
    console.log(`${failed.length === 0 ? 'ok  ' : 'FAIL'}  ${s}: ${rs.length - failed.length}/${rs.length} passed`)
    for (const r of failed) console.log(`        - ${r.name}: ${r.why.split('\n')[0]}`)
  }
  const failed = results.filter(r => !r.ok).length
  console.log(`${results.length - failed} of ${results.length} checks passed`)
  return failed === 0 ? 0 : 1
}

main().then(
  code => process.exit(code),
  error => {
    console.error('xo_client_test:', error)
    process.exit(1)
  }
)
