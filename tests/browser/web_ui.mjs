// Drives the agent's web UI in a real headless Chromium (Debian's, not a
// downloaded one) and prints what it saw as one JSON object on stdout; the
// Rust test tests/tests/web_ui.rs decides what passes.
//
//   node web_ui.mjs <base-url> <screenshot.png> [--stream NAME] [--recordings] [--buttons]
//
// 1. The page at <base-url>/: the streams it lists, the live player's
//    currentTime over 5 s, any script errors; a screenshot.
// 2. A bare page (served by this script at the agent's origin, so no CORS is
//    involved) playing the stream's LL-HLS playlist with this harness's own
//    hls.js from node_modules: currentTime over 5 s and hls.latency.
// 3. With --recordings: the page's recordings list, and playback of one file.
// 4. With --buttons: the card's stream and recording buttons, clicked in
//    turn, and what the card shows after each click.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const [base, screenshotPath] = args;
if (!base || !screenshotPath) {
  console.error("usage: node web_ui.mjs <base-url> <screenshot.png> [--stream NAME] [--recordings]");
  process.exit(2);
}
const streamName = args.includes("--stream") ? args[args.indexOf("--stream") + 1] : "cam";
const checkRecordings = args.includes("--recordings");
const checkButtons = args.includes("--buttons");
// Only the card of --stream: its state and what its overlay says (for a
// stream the browser cannot play).
const overlayOnly = args.includes("--overlay-only");

const WAIT_MS = 20_000;
const result = { base, stream: streamName, page: {}, bare: {}, errors: [] };

/** currentTime of the <video> matched by `selector`, every 250 ms for `ms`. */
async function sampleCurrentTime(page, selector, ms) {
  const samples = [];
  const start = Date.now();
  while (Date.now() - start <= ms) {
    const t = await page.$eval(selector, (v) => v.currentTime);
    samples.push({ wall_ms: Date.now() - start, current_time: t });
    await page.waitForTimeout(250);
  }
  return samples;
}

async function waitPlaying(page, selector) {
  await page.waitForFunction((s) => {
    const v = document.querySelector(s);
    return v && v.currentTime > 0 && !v.paused;
  }, selector, { timeout: WAIT_MS });
}

function watchErrors(page, where) {
  page.on("pageerror", (e) => result.errors.push(`${where}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") result.errors.push(`${where} console: ${m.text()}`);
  });
}

async function checkPage(context) {
  const page = await context.newPage();
  watchErrors(page, "page");
  await page.setViewportSize({ width: 1280, height: 900 });
  try {
    await pageSteps(page);
  } finally {
    // Saved even when a step failed: it shows what went wrong.
    await page.screenshot({ path: screenshotPath, fullPage: true });
    result.page.screenshot = screenshotPath;
    await page.close();
  }
}

async function pageSteps(page) {
  const response = await page.goto(`${base}/`);
  result.page.status = response.status();
  const card = `article[data-stream="${streamName}"]`;
  await page.waitForSelector(`${card}[data-state="live"]`, { timeout: WAIT_MS });
  result.page.title = await page.title();
  result.page.streams = await page.$$eval("article[data-stream]", (cards) =>
    cards.map((c) => ({
      name: c.dataset.stream,
      state: c.dataset.state,
      text: c.querySelector(".card-body").innerText,
    })),
  );
  const video = `${card} video`;
  await waitPlaying(page, video);
  result.page.live_samples = await sampleCurrentTime(page, video, 5000);
  result.page.status_tiles = await page.$$eval(".tile", (tiles) => tiles.map((t) => t.innerText.replace(/\s+/g, " ").trim()));
  result.page.latency_shown = await page.$eval(`${card} .facts`, (f) => f.innerText);
  if (checkRecordings) await checkPageRecordings(page);
  if (checkButtons) await checkPageButtons(page, card);
}

/** Clicks the card's buttons: stop and start the stream, start and stop recording. */
async function checkPageButtons(page, card) {
  const steps = [];
  result.page.buttons = steps;
  const click = async (action, expect) => {
    const button = `${card} button[data-action="${action}"]`;
    const label = await page.$eval(button, (b) => b.textContent);
    await page.click(button);
    await page.waitForFunction(expect, card, { timeout: WAIT_MS });
    steps.push({
      clicked: label,
      state: await page.$eval(card, (c) => c.dataset.state),
      badge: await page.$eval(`${card} .badge:not(.badge-rec)`, (b) => b.textContent),
      rec_shown: await page.$eval(`${card} .badge-rec`, (b) => !b.hidden),
      source_button: await page.$eval(`${card} button[data-action="source"]`, (b) => b.textContent),
      record_button: await page.$eval(`${card} button[data-action="record"]`, (b) => b.textContent),
    });
  };
  await click("source", (c) => document.querySelector(c).dataset.state === "stopped");
  await click("source", (c) => document.querySelector(c).dataset.state === "live");
  await click("record", (c) => !document.querySelector(`${c} .badge-rec`).hidden);
  await click("record", (c) => document.querySelector(`${c} .badge-rec`).hidden);
}

async function checkPageRecordings(page) {
  const rec = {};
  result.page.recordings = rec;
  // New files show up on the page's 30 s refresh or when the filter changes:
  // nudge it until one is listed.
  const deadline = Date.now() + 40_000;
  while ((await page.$$(".rec-item")).length === 0 && Date.now() < deadline) {
    await page.$eval("#rec-day", (d) => d.dispatchEvent(new Event("change", { bubbles: true })));
    await page.waitForTimeout(1000);
  }
  rec.items = await page.$$eval(".rec-item", (items) =>
    items.map((i) => ({ path: i.dataset.path, text: i.innerText.replace(/\s+/g, " ").trim() })),
  );
  rec.empty_text = await page.$eval("#rec-empty", (e) => (e.hidden ? "" : e.textContent));
  if (rec.items.length === 0) return;
  await page.click(".rec-item");
  await waitPlaying(page, "#rec-video");
  rec.src = await page.$eval("#rec-video", (v) => v.currentSrc);
  rec.duration = await page.$eval("#rec-video", (v) => v.duration);
  rec.samples = await sampleCurrentTime(page, "#rec-video", 3000);
}

async function checkOverlay(context) {
  const page = await context.newPage();
  watchErrors(page, "page");
  await page.goto(`${base}/`);
  const card = `article[data-stream="${streamName}"]`;
  await page.waitForSelector(`${card}[data-state="live"]`, { timeout: WAIT_MS });
  // Let a poll or two go by: the overlay must stay.
  await page.waitForTimeout(6000);
  result.page.overlay = await page.$eval(`${card} .overlay`, (o) => ({ hidden: o.hidden, text: o.textContent }));
  result.page.video_time = await page.$eval(`${card} video`, (v) => v.currentTime);
  await page.screenshot({ path: screenshotPath, fullPage: true });
  await page.close();
}

async function checkBareHlsJs(context) {
  const page = await context.newPage();
  watchErrors(page, "bare");
  const hlsJs = readFileSync(join(here, "node_modules/hls.js/dist/hls.min.js"));
  const pkg = JSON.parse(readFileSync(join(here, "node_modules/hls.js/package.json"), "utf8"));
  result.bare.hls_js_version = pkg.version;
  await page.route(`${base}/__harness/**`, (route) => {
    const url = route.request().url();
    if (url.endsWith("/hls.js")) {
      return route.fulfill({ contentType: "text/javascript", body: hlsJs });
    }
    return route.fulfill({
      contentType: "text/html",
      body: '<!doctype html><video id="v" muted autoplay playsinline></video><script src="hls.js"></script>',
    });
  });
  await page.goto(`${base}/__harness/bare.html`);
  const playlist = `/${encodeURIComponent(streamName)}/index.m3u8`;
  result.bare.mse = await page.evaluate((url) => {
    if (!window.Hls.isSupported()) return false;
    const hls = new window.Hls({ lowLatencyMode: true });
    window.hls = hls;
    window.hlsErrors = [];
    hls.on(window.Hls.Events.ERROR, (_e, d) => window.hlsErrors.push(`${d.type} ${d.details} fatal=${d.fatal}`));
    hls.loadSource(url);
    hls.attachMedia(document.getElementById("v"));
    return true;
  }, playlist);
  if (!result.bare.mse) return;
  await waitPlaying(page, "#v");
  result.bare.samples = await sampleCurrentTime(page, "#v", 5000);
  const latencies = [];
  for (let i = 0; i < 8; i++) {
    latencies.push(await page.evaluate(() => window.hls.latency));
    await page.waitForTimeout(250);
  }
  result.bare.latency_samples = latencies;
  result.bare.latency = latencies.slice().sort((a, b) => a - b)[Math.floor(latencies.length / 2)];
  result.bare.target_latency = await page.evaluate(() => window.hls.targetLatency);
  result.bare.low_latency_playlist = await page.evaluate(() => {
    const details = window.hls.levels[window.hls.currentLevel]?.details ?? window.hls.latestLevelDetails;
    return Boolean(details && details.partList && details.partList.length > 0);
  });
  result.bare.hls_errors = await page.evaluate(() => window.hlsErrors);
  await page.close();
}

const profile = mkdtempSync(join(tmpdir(), "streamswitch-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  for (const step of overlayOnly ? [checkOverlay] : [checkPage, checkBareHlsJs]) {
    try {
      await step(context);
    } catch (e) {
      result.errors.push(`${step.name}: ${e.message.split("\n")[0]}`);
    }
  }
} catch (e) {
  result.errors.push(`browser: ${e.message.split("\n")[0]}`);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
