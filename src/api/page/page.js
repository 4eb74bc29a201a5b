// dynport's port map. It only reads: GETs of the API and the event stream.
// Every string shown came from some caller (owners, names, commands), so
// the page sets text, never markup.
'use strict';

const KINDS = [
  ['free', 'free'], ['tcp', 'in use, TCP'], ['udp', 'in use, UDP'],
  ['both', 'in use, TCP and UDP'], ['leased', 'leased'],
  ['server', 'dynport itself'], ['excluded', 'excluded'],
];
const EVENTS = ['lease', 'release', 'expire', 'port', 'scan', 'name', 'reset'];
const MAX_ROWS = 500;

const $ = (id) => document.getElementById(id);
let range = null; // {start, end}
let cells = []; // cells[port - range.start]
const states = new Map(); // port -> {state, protocols}; absent: free
const leases = new Map(); // id -> lease
const names = new Map(); // name -> name
let pools = {};
let quota = null;
let loading = false;
let again = false;
let stream = null;
let streamOpen = false;
let loaded = false;
let renderTimer = null;
let hovered = null;

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = String(text);
  return e;
}

async function getJSON(path) {
  const answer = await fetch(path, { cache: 'no-store' });
  if (!answer.ok) throw new Error(path + ': ' + answer.status);
  return answer.json();
}

// Everything, again: at start, when the stream (re)opens, after a reset.
async function load() {
  if (loading) { again = true; return; }
  loading = true;
  try {
    do {
      again = false;
      const [table, list, named, overview] = await Promise.all([
        getJSON('/api/v1/tools/port/state'), getJSON('/api/v1/ports/leases'),
        getJSON('/api/v1/names'), getJSON('/api/v1/system/overview'),
      ]);
      take(table, list, named, overview);
    } while (again);
    loaded = true;
    setStatus();
  } catch (e) {
    $('summary').textContent = 'cannot read dynport: ' + e.message;
  } finally {
    loading = false;
  }
}

function take(table, list, named, overview) {
  const r = table.port_range;
  if (!range || range.start !== r.start || range.end !== r.end) {
    range = r;
    buildMap();
  }
  states.clear();
  for (const [port, entry] of Object.entries(table.ports)) states.set(Number(port), entry);
  leases.clear();
  for (const lease of list.leases) leases.set(lease.id, lease);
  names.clear();
  for (const name of named.names) names.set(name.name, name);
  pools = overview.port_manager.pools || {};
  quota = overview.port_manager.max_ports_per_uid;
  render();
}

// One row per 100 ports, aligned on hundreds, one element per port.
function buildMap() {
  const map = $('map');
  map.replaceChildren();
  cells = new Array(range.end - range.start + 1);
  for (let row = Math.floor(range.start / 100) * 100; row <= range.end; row += 100) {
    const line = el('div', 'row');
    line.append(el('b', row % 500 === 0 ? 'major' : '', row));
    for (let port = row; port < row + 100; port++) {
      const cell = document.createElement('i');
      if (port < range.start || port > range.end) {
        cell.className = 'out';
      } else {
        cell.dataset.port = port;
        cells[port - range.start] = cell;
      }
      line.append(cell);
    }
    map.append(line);
  }
}

function kind(entry) {
  if (!entry) return 'free';
  if (entry.state !== 'in_use') return entry.state;
  const p = entry.protocols || ['tcp'];
  return p.length > 1 ? 'both' : p[0];
}

function stateWords(entry) {
  if (!entry) return 'free';
  if (entry.state === 'in_use' && entry.protocols) return 'in_use ' + entry.protocols.join('+');
  return entry.state;
}

function uidWords(uid) {
  return uid === null || uid === undefined ? 'remote' : String(uid);
}

// What is known of one port, as label and value pairs.
function facts(port, byPort, namesOf) {
  const out = [['port', port], ['state', stateWords(states.get(port))]];
  const lease = byPort.get(port);
  if (lease) {
    out.push(['lease', lease.id], ['name', lease.name || '-'], ['owner', lease.owner || '-'],
      ['uid', uidWords(lease.uid)], ['pool', lease.pool], ['until', lease.expires_at || '-']);
    if (lease.pid) out.push(['pid', lease.pid]);
  }
  for (const n of namesOf.get(port) || []) {
    if (!lease || n.lease_id !== lease.id) {
      out.push([n.alias ? 'alias' : 'name', n.name + (n.live ? '' : ' (retained)') + ', uid ' + uidWords(n.uid)]);
    }
  }
  return out;
}

function indexes() {
  const byPort = new Map();
  for (const lease of leases.values()) for (const p of lease.ports) byPort.set(p, lease);
  const namesOf = new Map();
  for (const n of names.values()) {
    if (!namesOf.has(n.port)) namesOf.set(n.port, []);
    namesOf.get(n.port).push(n);
  }
  return [byPort, namesOf];
}

function render() {
  renderTimer = null;
  if (!range) return;
  const [byPort, namesOf] = indexes();
  const counts = { free: 0, in_use: 0, leased: 0, server: 0, excluded: 0 };
  for (let port = range.start; port <= range.end; port++) {
    const entry = states.get(port);
    counts[entry ? entry.state : 'free']++;
    const cell = cells[port - range.start];
    const k = kind(entry);
    if (cell.className !== k) cell.className = k;
    const lines = facts(port, byPort, namesOf);
    const title = port + ' ' + lines[1][1] + lines.slice(2).map(([a, b]) => '\n' + a + ': ' + b).join('');
    if (cell.title !== title) cell.title = title;
  }
  renderSummary(counts);
  renderPools();
  renderUsers();
  renderRows();
  if (hovered !== null) showInfo(hovered);
}

function later() {
  if (renderTimer === null) renderTimer = setTimeout(render, 30);
}

function renderSummary(c) {
  let server = '';
  for (const [port, entry] of states) if (entry.state === 'server') server = ' · server on ' + port;
  $('summary').textContent = 'ports ' + range.start + '-' + range.end + server + ' · ' + c.free + ' free, ' +
    c.in_use + ' in use, ' + c.leased + ' leased, ' + c.excluded + ' excluded';
}

function bar(parts, total) {
  const b = el('div', 'bar');
  for (const [n, className] of parts) {
    const s = el('span', className);
    s.style.width = (total ? (100 * n) / total : 0) + '%';
    b.append(s);
  }
  return b;
}

function renderPools() {
  const out = [];
  for (const [name, r] of Object.entries(pools)) {
    const size = r.end - r.start + 1;
    let leased = 0;
    let busy = 0;
    for (let p = r.start; p <= r.end; p++) {
      const e = states.get(p);
      if (e && e.state === 'leased') leased++;
      else if (e) busy++;
    }
    const pct = Math.round((100 * (leased + busy)) / size);
    out.push(el('div', '', name + ' ' + r.start + '-' + r.end + ': ' + leased + ' leased, ' + busy +
      ' otherwise taken, of ' + size + ' (' + pct + '% full)'));
    out.push(bar([[leased, 'leased'], [busy, 'tcp']], size));
  }
  $('pools').replaceChildren(...out);
}

function renderUsers() {
  const held = new Map();
  for (const lease of leases.values()) {
    const who = uidWords(lease.uid);
    held.set(who, (held.get(who) || 0) + lease.ports.length);
  }
  const out = [];
  if (held.size === 0) out.push(el('div', 'note', 'No leases.'));
  const limit = quota === null || quota === undefined ? null : quota;
  for (const [who, n] of [...held].sort((a, b) => b[1] - a[1])) {
    const of = limit === null ? ' (no quota)' : ' of ' + limit + ' allowed';
    out.push(el('div', limit !== null && n > limit ? 'over' : '', 'uid ' + who + ': ' + n + ' leased' + of));
    if (limit !== null) out.push(bar([[Math.min(n, limit), 'leased']], limit));
  }
  if (limit !== null) out.push(el('div', 'note', 'Operators (root, dynport\'s own uid) are not held to the quota.'));
  $('users').replaceChildren(...out);
}

function filters() {
  const f = {};
  for (const k of ['uid', 'pool', 'owner', 'name']) f[k] = $('f-' + k).value.trim().toLowerCase();
  return f;
}

function matches(row, f) {
  const has = (v, want) => !want || (v !== null && v !== undefined && String(v).toLowerCase().includes(want));
  return (!f.uid || uidWords(row.uid) === f.uid) && (!f.pool || (row.pool || '') === f.pool) &&
    has(row.owner, f.owner) && has(row.name, f.name);
}

function tableRows() {
  const rows = [];
  for (const l of leases.values()) {
    rows.push({ kind: 'lease', name: l.name, ports: l.ports, pool: l.pool, owner: l.owner, uid: l.uid,
      id: l.id, until: l.expires_at });
  }
  for (const n of names.values()) {
    if (n.lease_id && leases.has(n.lease_id)) continue;
    rows.push({ kind: n.alias ? 'alias' : 'name', name: n.name, ports: [n.port], pool: null, owner: null,
      uid: n.uid, id: n.lease_id, until: n.retained_until ? 'retained until ' + n.retained_until : 'live' });
  }
  return rows.sort((a, b) => a.ports[0] - b.ports[0]);
}

// Ports as runs: 3000-3019 3044.
function runs(ports) {
  const out = [];
  const sorted = [...ports].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    out.push(j > i ? sorted[i] + '-' + sorted[j] : String(sorted[i]));
    i = j;
  }
  return out.join(' ');
}

function renderRows() {
  const f = filters();
  const all = tableRows();
  const rows = all.filter((r) => matches(r, f));
  const out = rows.slice(0, MAX_ROWS).map((r) => {
    const tr = el('tr');
    for (const v of [r.kind, r.name, runs(r.ports), r.pool, r.owner, uidWords(r.uid), r.id, r.until]) {
      tr.append(el('td', '', v === null || v === undefined ? '-' : v));
    }
    return tr;
  });
  $('rows').replaceChildren(...out);
  const cut = rows.length > MAX_ROWS ? ', the first ' + MAX_ROWS + ' shown' : '';
  $('shown').textContent = rows.length + ' of ' + all.length + ' match' + cut;
}

function showInfo(port) {
  hovered = port;
  const [byPort, namesOf] = indexes();
  const dl = el('dl');
  for (const [k, v] of facts(port, byPort, namesOf)) dl.append(el('dt', '', k), el('dd', '', v));
  $('info').replaceChildren(dl);
}

// Who holds a port: its sockets and their processes.
async function showHolders(port) {
  const box = $('holders');
  box.replaceChildren(el('div', 'note', 'Looking up the holders of ' + port + '…'));
  try {
    const answer = await fetch('/api/v1/tools/port/state?port=' + port, { cache: 'no-store' });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || answer.status);
    const holders = body.holders || [];
    const out = [el('div', '', holders.length ? 'Holders of ' + port + ':' : 'No socket holds ' + port + '.')];
    if (holders.length) {
      const t = el('table');
      const head = el('tr');
      for (const h of ['pid', 'process', 'uid', 'proto', 'address']) head.append(el('th', '', h));
      t.append(head);
      for (const h of holders) {
        const tr = el('tr');
        for (const v of [h.pid, h.command, h.uid, h.protocol, h.address]) tr.append(el('td', '', v ?? '-'));
        t.append(tr);
      }
      out.push(t);
    }
    if (!body.complete) out.push(el('div', 'note', 'The lookup ran out of time: some processes may be missing.'));
    box.replaceChildren(...out);
  } catch (e) {
    box.replaceChildren(el('div', 'over', 'Holders of ' + port + ': ' + e.message));
  }
}

const apply = {
  lease(d) {
    leases.set(d.id, d);
    for (const p of d.ports) states.set(p, { state: 'leased' });
  },
  release(d) { ended(d); },
  expire(d) { ended(d); },
  scan(d) {
    let protocols = false;
    for (const c of d.changes) {
      if (c.to === 'free') states.delete(c.port);
      else states.set(c.port, { state: c.to });
      protocols = protocols || c.to === 'in_use';
    }
    // A scan's changes do not say which protocols hold a port.
    if (protocols) load();
  },
  name(d) {
    if (d.gone) names.delete(d.name);
    else names.set(d.name, d);
  },
  reset() { load(); },
  port(d) {
    // The stream closes with the old listener: go on at the new port.
    const url = new URL(location.href);
    url.port = String(d.to);
    location.replace(url.href);
  },
};

function ended(d) {
  leases.delete(d.id);
  for (const p of d.ports) {
    const e = states.get(p);
    if (e && e.state === 'leased') states.delete(p);
  }
}

function onEvent(e) {
  let data;
  try { data = JSON.parse(e.data); } catch { return; }
  if (loading) { again = true; }
  if (!apply[e.type]) return;
  apply[e.type](data);
  later();
}

function setStatus() {
  const live = streamOpen && loaded;
  $('live').textContent = live ? 'live' : 'connecting';
  $('live').className = live ? '' : 'off';
  document.body.dataset.ready = live ? '1' : '';
}

// The stream; each time it opens, everything is read again, so nothing
// that happened while it was closed is missed.
function connect() {
  stream = new EventSource('/api/v1/events');
  stream.onopen = () => { streamOpen = true; setStatus(); load(); };
  stream.onerror = () => {
    streamOpen = false;
    setStatus();
    if (stream.readyState === EventSource.CLOSED) {
      stream.close();
      setTimeout(connect, 5000);
    }
  };
  for (const k of EVENTS) stream.addEventListener(k, onEvent);
}

document.addEventListener('DOMContentLoaded', () => {
  const legend = $('legend');
  for (const [k, words] of KINDS) {
    const li = el('li');
    li.append(el('i', k), words);
    legend.append(li);
  }
  const map = $('map');
  map.addEventListener('mouseover', (e) => { if (e.target.dataset.port) showInfo(Number(e.target.dataset.port)); });
  map.addEventListener('click', (e) => { if (e.target.dataset.port) showHolders(Number(e.target.dataset.port)); });
  for (const k of ['uid', 'pool', 'owner', 'name']) $('f-' + k).addEventListener('input', () => renderRows());
  connect();
  load();
});
