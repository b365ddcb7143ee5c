// Headless Chromium opens twincast's field console (GET / on the control listener) and reports
// what it showed, as one JSON line (tests/e2e_console.rs judges it).
//
//   node console.mjs --url http://127.0.0.1:9090/ --screenshot ../../target/artifacts/console.png
//
// We wait until the page has read /status several times (the uptime on the page changes between
// two reads: values update), has received an event from /events, has drawn a thumbnail from the
// origin, and shows every destination the daemon reports; then the screenshot is taken.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function args() {
  const out = { timeout: 90, minStatus: 8 };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '');
    const v = a[i + 1];
    if (k === 'url') out.url = v;
    else if (k === 'screenshot') out.screenshot = v;
    else if (k === 'timeout') out.timeout = Number(v);
    else throw new Error('unknown argument ' + a[i]);
  }
  if (!out.url) throw new Error('--url is required');
  return out;
}

const opts = args();
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twincast-chromium-'));
const result = { ok: false, url: opts.url, consoleErrors: [], external: [], uptimes: [] };
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1280, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (e) => result.consoleErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') result.consoleErrors.push(m.text()); });
  // Everything must come from this box (the console works without internet).
  page.on('request', (r) => {
    const host = new URL(r.url()).hostname;
    if (!r.url().startsWith('data:') && host !== '127.0.0.1' && host !== 'localhost') result.external.push(r.url());
  });
  await page.goto(opts.url, { waitUntil: 'load', timeout: 30000 });
  const deadline = Date.now() + opts.timeout * 1000;
  const state = () => page.evaluate(() => {
    const c = window.twincastConsole || {};
    const rows = [...document.querySelectorAll('#outputs tbody tr[data-dest]')].map((tr) => ({
      output: tr.dataset.output, dest: tr.dataset.dest, track: tr.dataset.track, state: tr.dataset.state,
      error: tr.querySelector('.err').textContent,
      reconnects: Number(tr.querySelector('.reconnects').textContent),
    }));
    const tracks = [...document.querySelectorAll('#tracks tbody tr')].map((tr) => ({
      track: tr.dataset.track, bitrate: tr.querySelector('.bitrate').textContent,
      fps: Number(tr.querySelector('.fps').textContent),
      chartPoints: (tr.querySelector('polyline.bitrate')?.getAttribute('points') || '').split(' ').filter(Boolean).length,
    }));
    return {
      statusCount: c.statusCount || 0, statusErrors: c.statusErrors || 0, events: c.events || 0,
      thumbnails: c.thumbnails || 0, lastError: c.lastError,
      encoder: document.getElementById('encoder-name').textContent,
      uptime: document.getElementById('uptime').textContent,
      ready: document.getElementById('ready').textContent,
      clock: document.getElementById('clock').textContent,
      pairLocked: document.getElementById('pair-locked').textContent,
      input: document.getElementById('input-state').textContent,
      eventKinds: [...document.querySelectorAll('#events li')].map((li) => li.dataset.kind),
      thumbnail: document.getElementById('thumbnail').src.slice(0, 30),
      thumbnailCaption: document.getElementById('thumbnail-caption').textContent,
      rows, tracks,
    };
  });
  let s = await state();
  const done = (s) => s.statusCount >= opts.minStatus && s.events >= 1 && s.thumbnails >= 1
    && s.rows.some((r) => r.state === 'publishing') && s.rows.some((r) => r.state !== 'publishing' && r.error)
    && result.uptimes.length >= 2 && result.uptimes[0] !== result.uptimes[result.uptimes.length - 1];
  while (Date.now() < deadline) {
    s = await state();
    if (result.uptimes[result.uptimes.length - 1] !== s.uptime) result.uptimes.push(s.uptime);
    if (done(s)) break;
    await page.waitForTimeout(500);
  }
  Object.assign(result, s);
  if (opts.screenshot) {
    fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    result.screenshot = opts.screenshot;
  }
  result.ok = done(s) && result.consoleErrors.length === 0 && result.external.length === 0;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
