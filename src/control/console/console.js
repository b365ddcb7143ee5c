// twincast field console (src/control/console/mod.rs). Reads GET /status every POLL_MS, follows
// GET /events, takes a thumbnail from the origin every THUMB_MS. No external resources.
'use strict';

const POLL_MS = 2000;
const THUMB_MS = 5000;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const MAX_EVENTS = 100;
const EVENT_KINDS = ['heartbeat', 'output_connected', 'output_disconnected', 'input_lost',
  'input_restored', 'input_switched', 'config_reloaded', 'config_rejected'];

// What the page has seen, for people debugging it and for tests (tests/browser/console.mjs).
const seen = window.twincastConsole = { statusCount: 0, statusErrors: 0, events: 0, thumbnails: 0, lastError: null };
const samples = new Map(); // track -> [{t, bps, fps}]

const $ = (id) => document.getElementById(id);
function text(id, value) { const e = $(id); if (e) e.textContent = value; }
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bits(bps) {
  if (!Number.isFinite(bps)) return '–';
  if (bps >= 1e6) return (bps / 1e6).toFixed(2) + ' Mb/s';
  if (bps >= 1e3) return (bps / 1e3).toFixed(0) + ' kb/s';
  return bps + ' b/s';
}
function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${Math.floor(s % 60)}s`;
}
function yesNo(id, ok, yes, no) {
  const e = $(id);
  e.textContent = ok ? yes : no;
  e.className = 'big ' + (ok ? 'ok' : 'bad');
}

function chart(points) {
  // The x axis covers what the page has seen (at most CHART_WINDOW_MS): a page opened a minute
  // ago draws its minute across the whole chart.
  const w = 240, h = 36, now = Date.now();
  const span = Math.max(POLL_MS, Math.min(CHART_WINDOW_MS, now - (points.length ? points[0].t : now)));
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const line = (key, cls) => {
    const max = Math.max(1, ...points.map((p) => p[key]));
    const pts = points.map((p) => {
      const x = w - (now - p.t) / span * w;
      const y = h - 2 - (p[key] / max) * (h - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    }).join(' ');
    const pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
    pl.setAttribute('class', cls);
    pl.setAttribute('points', pts);
    svg.append(pl);
  };
  line('bps', 'bitrate');
  line('fps', 'fps');
  const label = document.createElementNS('http://www.w3.org/2000/svg', 'text');
  label.setAttribute('x', 2);
  label.setAttribute('y', 10);
  label.textContent = `${Math.round(span / 1000)} s · max ${bits(Math.max(...points.map((p) => p.bps)))}`;
  svg.append(label);
  const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
  title.textContent = `bitrate (solid) and fps (dashed) over the last ${Math.round(span / 1000)} s (at most ${CHART_WINDOW_MS / 60000} minutes), ${points.length} samples`;
  svg.append(title);
  return svg;
}

function renderTracks(s) {
  const now = Date.now();
  const body = $('tracks').tBodies[0];
  body.replaceChildren();
  for (const t of s.tracks) {
    const list = samples.get(t.name) || [];
    list.push({ t: now, bps: t.bitrate_bps, fps: t.fps });
    while (list.length && now - list[0].t > CHART_WINDOW_MS) list.shift();
    samples.set(t.name, list);
    body.append(el('tr', { 'data-track': t.name },
      el('td', {}, `${t.name} (${t.kind})`),
      el('td', { class: 'num bitrate' }, bits(t.bitrate_bps)),
      el('td', { class: 'num fps' }, t.fps.toFixed(2)),
      el('td', { class: 'num' }, t.fragments),
      el('td', { class: 'num' + (t.discontinuities ? ' warn' : '') }, t.discontinuities),
      el('td', { class: 'num' + (t.dropped_units ? ' bad' : '') }, t.dropped_units),
      el('td', {}, chart(list))));
  }
}

function renderOutputs(s) {
  const body = $('outputs').tBodies[0];
  body.replaceChildren();
  for (const o of s.outputs) {
    if (o.destinations.length === 0) {
      body.append(el('tr', {}, el('td', {}, o.name), el('td', { colspan: 9 }, `${o.protocol}: no task yet`)));
    }
    for (const d of o.destinations) {
      body.append(el('tr', { 'data-output': d.output, 'data-dest': d.dest, 'data-track': d.track, 'data-state': d.state, title: d.url },
        el('td', {}, `${o.name} (${o.protocol})`),
        el('td', {}, d.dest),
        el('td', {}, d.track),
        el('td', { class: 'state ' + d.state }, d.state),
        el('td', { class: 'err' }, d.last_error || ''),
        el('td', { class: 'num' }, `${d.backlog_fragments} / ${bytes(d.backlog_bytes)}`),
        el('td', { class: 'num' + (d.dropped_fragments ? ' bad' : '') }, d.dropped_fragments),
        el('td', { class: 'num' }, d.resent_fragments),
        el('td', { class: 'num reconnects' }, Math.max(0, d.attempts - 1)),
        el('td', { class: 'num' }, bytes(d.bytes_sent))));
    }
  }
  text('publish-memory', `backlogs hold ${bytes(s.publish.memory_used_bytes)} of ${bytes(s.publish.memory_limit_bytes)}`);
}

function renderOrigin(s) {
  const o = s.origin;
  text('origin-listen', `${o.listen}, DVR ${duration(o.dvr_window_s)}`);
  const rows = [
    ['requests', o.requests], ['denied (allow-list)', o.denied_requests], ['not found', o.not_found],
    ['connections', o.connections], ['connections refused', o.connections_refused],
    ['fragments lagged', o.fragments_lagged],
    ['disk', o.disk_enabled ? `${bytes(o.disk_bytes)} in ${o.disk_files} files, ${o.disk_errors} write / ${o.disk_read_errors} read errors` : 'off'],
  ];
  for (const t of o.tracks) rows.push([`window ${t.name}`, `${t.segments} segments, ${(t.window_ms / 1000).toFixed(0)} s (${t.ram_segments} in RAM)`]);
  const body = $('origin').tBodies[0];
  body.replaceChildren(...rows.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', { class: 'num' }, v))));
}

function renderInput(s) {
  const i = s.input;
  const state = i.source === 'backup' && i.state === 'live' ? 'backup' : i.state;
  const e = $('input-state');
  e.textContent = state;
  e.className = 'big ' + (state === 'live' ? 'ok' : state === 'slate' ? 'bad' : 'warn');
  const age = i.last_frame_age_ms == null ? 'no frame yet' : `last frame ${i.last_frame_age_ms} ms ago`;
  const c = i.counters;
  const net = c ? `, lost ${c.lost}, reordered ${c.reordered}, dup ${c.duplicated}, PCR/PTS disc. ${c.pcr_discontinuities}/${c.pts_discontinuities}` : '';
  text('input-detail', `${i.kind}, ${i.source}, timing ${i.timing}; ${age}; since ${i.since}; slate frames ${i.slate_frames}${net}`);
}

function render(s) {
  text('encoder-name', s.encoder.name);
  text('pair-name', s.encoder.pair);
  text('pair-name2', s.encoder.pair);
  text('summary', s.summary);
  text('version', s.encoder.version);
  text('pid', s.encoder.pid);
  text('uptime', duration(s.encoder.uptime_s));
  text('framerate', s.encoder.framerate);
  text('gop', `${s.encoder.gop_ms} ms`);
  text('fragment', `${s.encoder.fragment_ms} ms`);
  text('updated', 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
  document.title = `${s.encoder.name} · twincast console`;
  yesNo('ready', s.ready, 'ready', 'starting');
  yesNo('clock', !!(s.clock && s.clock.synchronised), 'synchronised', s.clock ? 'not synchronised' : 'unreadable');
  text('clock-detail', s.clock ? `est. error ${s.clock.estimated_error_us} µs, max ${s.clock.max_error_us} µs` : 'adjtimex(2) cannot be read');
  yesNo('pair-locked', s.pair_locked, 'locked', 'not locked');
  renderInput(s);
  renderTracks(s);
  renderOutputs(s);
  renderOrigin(s);
  const c = s.config;
  text('config-line', `${c.path}: ${c.reloads} reloads, ${c.reload_failures} rejected` +
    (c.restart_needed.length ? `; waiting for a restart: ${c.restart_needed.join(', ')}` : ''));
  thumbnailSource(s);
}

async function poll() {
  try {
    const r = await fetch('/status', { cache: 'no-store' });
    if (!r.ok) throw new Error(`GET /status: HTTP ${r.status}`);
    const s = await r.json();
    seen.statusCount++;
    seen.last = s;
    render(s);
  } catch (e) {
    seen.statusErrors++;
    seen.lastError = String(e);
    text('summary', `control listener unreachable: ${e}`);
    $('summary').className = 'summary bad';
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function describe(kind, d) {
  switch (kind) {
    case 'heartbeat': return `${d.track}: ${bits(d.bitrate_bps)}, ${d.fps} fps, ${d.fragments} fragments, ${d.discontinuities} disc.`;
    case 'output_connected': return `${d.output} ${d.dest} ${d.track} → ${d.url}`;
    case 'output_disconnected': return `${d.output} ${d.dest} ${d.track}: ${d.state}${d.error ? ' — ' + d.error : ''}`;
    case 'input_lost': return `no picture for ${d.silent_ms} ms`;
    case 'input_restored': return `after ${d.lost_ms} ms`;
    case 'input_switched': return `now ${d.source}`;
    default: return JSON.stringify(d);
  }
}

function follow() {
  const src = new EventSource('/events');
  src.onopen = () => { text('events-state', 'live'); $('events-state').className = 'ok'; };
  src.onerror = () => { text('events-state', 'reconnecting…'); $('events-state').className = 'bad'; };
  for (const kind of EVENT_KINDS) {
    src.addEventListener(kind, (m) => {
      let d;
      try { d = JSON.parse(m.data); } catch { d = { raw: m.data }; }
      seen.events++;
      const list = $('events');
      list.prepend(el('li', { class: kind, 'data-kind': kind },
        new Date().toISOString().slice(11, 19), ' ', el('span', { class: 'kind' }, kind), ' ', describe(kind, d)));
      while (list.children.length > MAX_EVENTS) list.lastChild.remove();
    });
  }
}

// Thumbnail: the lowest video rendition from the origin, played muted and hidden, drawn into
// an image every THUMB_MS.
let thumb = null;
function thumbnailSource(s) {
  if (thumb || typeof Hls === 'undefined' || !Hls.isSupported()) return;
  const video = s.tracks.filter((t) => t.kind === 'video' && t.fragments > 0)
    .sort((a, b) => a.bitrate_bps - b.bitrate_bps)[0];
  if (!video) return;
  const port = s.origin.listen.slice(s.origin.listen.lastIndexOf(':') + 1);
  const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
  const url = `${location.protocol}//${host}:${port}/live/${encodeURIComponent(video.name)}/index.m3u8`;
  const v = document.createElement('video');
  v.muted = true;
  v.playsInline = true;
  const hls = new Hls({ enableWorker: false, liveSyncDurationCount: 2 });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    if (data.fatal) { text('thumbnail-caption', `origin: ${data.details}`); hls.destroy(); thumb = null; }
  });
  hls.loadSource(url);
  hls.attachMedia(v);
  v.play().catch(() => {});
  thumb = { hls, video: v, track: video.name, url };
}

function snapshot() {
  if (thumb && thumb.video.readyState >= 2 && thumb.video.videoWidth > 0) {
    const c = document.createElement('canvas');
    c.width = 384; c.height = 216;
    c.getContext('2d').drawImage(thumb.video, 0, 0, c.width, c.height);
    $('thumbnail').src = c.toDataURL('image/jpeg', 0.8);
    seen.thumbnails++;
    text('thumbnail-caption', `${thumb.track} at ${new Date().toISOString().slice(11, 19)} UTC`);
  }
  setTimeout(snapshot, seen.thumbnails === 0 ? 1000 : THUMB_MS);
}

$('reload-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('token').value.trim();
  const answer = $('reload-answer');
  try {
    const r = await fetch('/reload', { method: 'POST', headers: token ? { Authorization: `Bearer ${token}` } : {} });
    const body = await r.text();
    answer.textContent = r.ok ? 'reload requested: see the events' : `refused (HTTP ${r.status}): ${body}`;
    answer.className = r.ok ? 'ok' : 'bad';
  } catch (e) {
    answer.textContent = String(e);
    answer.className = 'bad';
  }
});

poll();
follow();
snapshot();
