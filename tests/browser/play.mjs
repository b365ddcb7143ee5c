// Headless Chromium plays a twincast origin page and reports what happened, as one JSON line.
//
//   node play.mjs --url http://127.0.0.1:8080/ --seconds 10 --screenshot ../../ci-artifacts/x.png
//                 [--switch-to http://127.0.0.1:8081 --switch-after 5]
//
// The page (assets/index.html or assets/dash.html, served by the origin) records fatal player
// errors in `window.twincastErrors`. We wait until `video.currentTime` has advanced `--seconds`
// past its first value, tracking the longest interval without progress (a stall).
//
// `inits` lists the init segment paths the player fetched (a reload that changes the codec
// parameters shows up as a second, versioned init).
//
// `dateRanges` lists the EXT-X-DATERANGE tags hls.js parsed (id, start, planned duration,
// SCTE35-OUT) in the playlists it loaded.
//
// On a failure the result carries `diag`: the video element's state (readyState, paused,
// buffered ranges), the last requests (path, status, ms since the page opened) and the last
// console lines; open the page with `?debug=1` to have hls.js write its log there.
//
// Pair switch: after `--switch-after` seconds of playback we set `window.twincastRewrite` so that
// hls.js (through its xhrSetup hook) sends every later request (playlists and segments) to the
// other box, then require another `--seconds` of playback; requests are counted per origin.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function args() {
  const out = { seconds: 10, switchAfter: 5, timeout: 120 };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^--/, '');
    const v = a[i + 1];
    if (k === 'url') out.url = v;
    else if (k === 'seconds') out.seconds = Number(v);
    else if (k === 'screenshot') out.screenshot = v;
    else if (k === 'switch-to') out.switchTo = v;
    else if (k === 'switch-after') out.switchAfter = Number(v);
    else if (k === 'timeout') out.timeout = Number(v);
    else throw new Error('unknown argument ' + a[i]);
  }
  if (!out.url) throw new Error('--url is required');
  return out;
}

const opts = args();
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twincast-chromium-'));
const result = { ok: false, url: opts.url, errors: [], consoleErrors: [], advanced: 0, maxStallMs: 0, requests: {}, inits: [] };
let context;
let page;
const consoleTail = [];
const requestTail = [];
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 800, height: 600 },
  });
  page = context.pages()[0] || await context.newPage();
  const opened = Date.now();
  const keep = (ring, item, n) => { ring.push(item); if (ring.length > n) ring.shift(); };
  page.on('pageerror', (e) => result.consoleErrors.push(String(e)));
  page.on('console', (m) => keep(consoleTail, `${Date.now() - opened} ${m.type()} ${m.text()}`.slice(0, 300), 120));
  const finished = async (r, failure) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/live/')) return;
    const status = failure ? 'failed ' + failure : (await r.response().catch(() => null))?.status();
    keep(requestTail, `${Date.now() - opened} ${u.pathname} ${status}`, 60);
  };
  page.on('requestfinished', (r) => finished(r, null));
  page.on('requestfailed', (r) => finished(r, r.failure()?.errorText || 'unknown'));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.startsWith('/live/')) {
      result.requests[u.origin] = (result.requests[u.origin] || 0) + 1;
      if (/\/init[^/]*\.mp4$/.test(u.pathname) && !result.inits.includes(u.pathname)) {
        result.inits.push(u.pathname);
      }
    }
  });
  await page.goto(opts.url, { waitUntil: 'load', timeout: 30000 });
  const deadline = Date.now() + opts.timeout * 1000;
  const currentTime = () => page.evaluate(() => document.getElementById('video').currentTime);
  const errors = () => page.evaluate(() => window.twincastErrors || []);

  // Wait for playback to start.
  let start = await currentTime();
  while (start <= 0 && Date.now() < deadline) {
    await page.waitForTimeout(250);
    start = await currentTime();
  }
  if (start <= 0) throw new Error('playback never started');

  // Play `seconds`, watching for stalls; returns the media time reached.
  async function play(from, seconds) {
    let last = from;
    let lastProgress = Date.now();
    while (Date.now() < deadline) {
      const e = await errors();
      if (e.length) throw new Error('player error: ' + e.join('; '));
      const t = await currentTime();
      const now = Date.now();
      if (t > last) {
        result.maxStallMs = Math.max(result.maxStallMs, now - lastProgress);
        last = t;
        lastProgress = now;
      }
      if (t - from >= seconds) return t;
      await page.waitForTimeout(250);
    }
    throw new Error(`currentTime advanced only ${(last - from).toFixed(1)} s of ${seconds}`);
  }

  let t = start;
  if (opts.switchTo) {
    t = await play(t, opts.switchAfter);
    const from = new URL(opts.url).origin;
    await page.evaluate(([a, b]) => {
      window.twincastRewrite = (u) => u.startsWith(a) ? b + u.slice(a.length) : u;
    }, [from, opts.switchTo]);
    result.switchedAt = t;
    result.requestsBeforeSwitch = { ...result.requests };
  }
  t = await play(t, opts.seconds);
  result.advanced = t - start;
  result.errors = await errors();
  // The EXT-X-DATERANGE tags hls.js read from the playlists it loaded (ad signals).
  result.dateRanges = await page.evaluate(() => {
    const out = [];
    for (const l of (window.hls && window.hls.levels) || []) {
      const ranges = (l.details && l.details.dateRanges) || {};
      for (const [id, r] of Object.entries(ranges)) {
        out.push({
          id,
          start: r.startDate ? r.startDate.toISOString() : null,
          plannedDuration: r.plannedDuration ?? null,
          scte35Out: (r.attr && r.attr['SCTE35-OUT']) || null,
        });
      }
    }
    return out;
  }).catch(() => []);
  if (opts.screenshot) {
    fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
    await page.screenshot({ path: opts.screenshot });
    result.screenshot = opts.screenshot;
  }
  result.ok = result.errors.length === 0;
} catch (e) {
  result.failure = String(e && e.message ? e.message : e);
  const video = page && await page.evaluate(() => {
    const v = document.getElementById('video');
    if (!v) return null;
    const ranges = [];
    for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
    return {
      currentTime: v.currentTime, readyState: v.readyState, networkState: v.networkState,
      paused: v.paused, seeking: v.seeking, error: v.error && v.error.message, buffered: ranges,
      status: document.getElementById('status')?.textContent,
    };
  }).catch((err) => 'unreadable: ' + err);
  result.diag = { video, requests: requestTail, console: consoleTail };
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
