// StreamSwitch Edge: the local web UI. Plain browser JavaScript, no build
// step. It polls the agent's JSON API, plays each stream's LL-HLS playlist
// (hls.js where Media Source Extensions exist, the browser's own HLS
// otherwise), and lists and plays recordings.
"use strict";

const POLL_MS = 5000;
const RETRY_MS = 2000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// ---------- formatting ----------

function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function formatBytes(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

function formatTime(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// ---------- API ----------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) {
    const text = (await response.text()).trim();
    throw new HttpError(response.status, `${url}: ${response.status} ${text}`);
  }
  return response.json();
}

/** A command of the agent's API: a POST with a JSON body. */
async function postCommand(url) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  if (!response.ok) {
    const text = (await response.text()).trim();
    throw new HttpError(response.status, `${url}: ${response.status} ${text}`);
  }
  return response.json();
}

function showError(message) {
  const banner = $("error");
  banner.textContent = message;
  banner.hidden = !message;
}

// ---------- agent status ----------

let previousCpu = null;

function renderStatus(status) {
  $("device-id").textContent = status.device_id;
  $("version").textContent = `v${status.version}`;
  document.title = `${status.device_id} · StreamSwitch Edge`;
  $("uptime").textContent = formatDuration(status.uptime_s);
  const started = new Date(Date.now() - status.uptime_s * 1000);
  $("started").textContent = `since ${started.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" })}`;

  // CPU load is the CPU time spent between two polls over the time between them.
  if (previousCpu && status.uptime_s > previousCpu.uptime_s) {
    const load = (status.cpu_seconds - previousCpu.cpu_seconds) / (status.uptime_s - previousCpu.uptime_s);
    $("cpu").textContent = `${(load * 100).toFixed(1)} %`;
    $("cpu-note").textContent = "of one core";
  } else {
    $("cpu").textContent = `${status.cpu_seconds.toFixed(1)} s`;
    $("cpu-note").textContent = "CPU time so far";
  }
  previousCpu = status;

  $("memory").textContent = formatBytes(status.rss_bytes);

  const disk = status.disk;
  const used = disk.total_bytes > 0 ? 1 - disk.free_bytes / disk.total_bytes : 0;
  $("disk").textContent = `${formatBytes(disk.free_bytes)} free`;
  $("disk-note").textContent = `of ${formatBytes(disk.total_bytes)} · ${disk.path}`;
  const meter = $("disk-meter");
  meter.style.width = `${(used * 100).toFixed(1)}%`;
  meter.classList.toggle("meter-warn", used > 0.9);
}

// ---------- live players ----------

/** Plays one stream's LL-HLS playlist in a <video>, and restarts on failure. */
class LivePlayer {
  constructor(video, url) {
    this.video = video;
    this.url = url;
    this.hls = null;
    this.mode = null;
    this.retryTimer = null;
  }

  get playing() {
    return this.hls !== null || this.video.hasAttribute("src");
  }

  start() {
    if (this.playing) return;
    const video = this.video;
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ lowLatencyMode: true, backBufferLength: 30 });
      hls.on(window.Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
        else this.restartLater();
      });
      hls.loadSource(this.url);
      hls.attachMedia(video);
      this.hls = hls;
      this.mode = "hls.js";
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = this.url;
      video.addEventListener("error", () => this.restartLater(), { once: true });
      this.mode = "native HLS";
    } else {
      this.mode = "unsupported";
      return;
    }
    // Muted autoplay is allowed everywhere; if a browser still refuses,
    // the controls let the viewer start it.
    video.play().catch(() => {});
  }

  stop() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.video.hasAttribute("src")) {
      this.video.removeAttribute("src");
      this.video.load();
    }
  }

  restartLater() {
    this.stop();
    this.retryTimer = setTimeout(() => this.start(), RETRY_MS);
  }

  /** Seconds behind the live edge, when hls.js knows it. */
  latency() {
    const latency = this.hls ? this.hls.latency : NaN;
    return Number.isFinite(latency) && latency > 0 ? latency : null;
  }
}

// ---------- streams ----------

const cards = new Map();

/** Whether this browser can decode H.265 in fMP4 (many cannot). */
function canPlayHevc() {
  const type = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
  const mse = window.MediaSource && window.MediaSource.isTypeSupported(type);
  return Boolean(mse || document.createElement("video").canPlayType(type));
}

function playlistUrl(name) {
  return `/${encodeURIComponent(name)}/index.m3u8`;
}

function fact(label) {
  const value = el("dd", { text: "–" });
  return { row: el("div", {}, el("dt", { text: label }), value), value };
}

function createCard(name) {
  const video = el("video", { muted: "", autoplay: "", playsinline: "", controls: "" });
  video.muted = true;
  const overlay = el("div", { class: "overlay", text: "Waiting for the camera…" });
  const badge = el("span", { class: "badge" });
  const rec = el("span", { class: "badge badge-rec", text: "REC", hidden: "" });
  const tracks = el("p", { class: "tracks muted" });
  const error = el("p", { class: "stream-error", hidden: "" });
  const sourceButton = el("button", { type: "button", class: "action", "data-action": "source" });
  const recordButton = el("button", { type: "button", class: "action", "data-action": "record" });
  const fps = fact("Frame rate");
  const viewers = fact("Viewers");
  const latency = fact("Latency");
  const root = el(
    "article",
    { class: "card", "data-stream": name },
    el("div", { class: "video-wrap" }, video, overlay),
    el(
      "div",
      { class: "card-body" },
      el("div", { class: "card-title" }, el("h3", { text: name }), rec, badge),
      tracks,
      error,
      el("dl", { class: "facts" }, fps.row, viewers.row, latency.row),
      el("div", { class: "actions" }, sourceButton, recordButton),
      el("a", { class: "link", href: playlistUrl(name), text: "HLS playlist" }),
    ),
  );
  const card = {
    root,
    overlay,
    badge,
    rec,
    tracks,
    error,
    sourceButton,
    recordButton,
    fps: fps.value,
    viewers: viewers.value,
    latency: latency.value,
    player: new LivePlayer(video, playlistUrl(name)),
    sourceOn: true,
    recordOn: false,
  };
  const path = encodeURIComponent(name);
  sourceButton.addEventListener("click", () =>
    runCommand(sourceButton, `/api/streams/${path}/${card.sourceOn ? "stop" : "start"}`),
  );
  recordButton.addEventListener("click", () =>
    runCommand(recordButton, `/api/recordings/${path}/${card.recordOn ? "stop" : "start"}`),
  );
  return card;
}

/** Sends a command, then shows its effect at once rather than at the next poll. */
async function runCommand(button, url) {
  button.disabled = true;
  try {
    await postCommand(url);
    showError("");
  } catch (error) {
    showError(`Command failed: ${error.message}`);
  }
  button.disabled = false;
  await refresh();
}

const STATE_LABELS = { live: "Live", starting: "Starting", down: "Down", stopped: "Stopped" };

function describeViewers(viewers) {
  const watching = ["rtsp", "hls", "uplink"]
    .filter((output) => viewers[output] > 0)
    .map((output) => `${viewers[output]} ${output === "hls" ? "HLS" : output.toUpperCase()}`);
  return watching.length > 0 ? watching.join(" · ") : "none";
}

function updateCard(card, stream) {
  const live = stream.state === "live";
  card.root.dataset.state = stream.state;
  card.badge.textContent = STATE_LABELS[stream.state] || stream.state;
  card.badge.className = `badge badge-${stream.state}`;
  const recording = stream.recording || { enabled: false, recording: false };
  card.rec.hidden = !recording.recording;
  card.sourceOn = stream.source_enabled;
  card.recordOn = recording.enabled;
  card.sourceButton.textContent = stream.source_enabled ? "Stop stream" : "Start stream";
  card.recordButton.textContent = recording.enabled ? "Stop recording" : "Start recording";
  const problem = stream.state === "down" || stream.state === "starting" ? stream.last_error : recording.last_error;
  card.error.hidden = !problem;
  card.error.textContent = problem ? `Last error: ${problem}` : "";
  card.tracks.textContent = stream.tracks || "No media yet";
  card.fps.textContent = live ? `${stream.fps} fps` : "–";
  card.viewers.textContent = describeViewers(stream.viewers);
  card.overlay.hidden = live;
  card.overlay.textContent = stream.state === "stopped" ? "Stream stopped" : stream.state === "down" ? "Camera down, retrying…" : "Waiting for the camera…";
  const unplayable = live && /^H265/.test(stream.tracks) && !canPlayHevc();
  if (unplayable) {
    card.overlay.hidden = false;
    card.overlay.textContent = "This browser cannot play H.265 video: use the RTSP URL (VLC, ffplay) or a browser with HEVC support.";
    card.player.stop();
    return;
  }
  if (live) card.player.start();
  else card.player.stop();
}

function renderStreams(streams) {
  const container = $("streams");
  $("streams-empty").hidden = streams.length > 0;
  $("streams-empty").textContent = "No streams are configured.";
  const names = new Set(streams.map((s) => s.name));
  for (const [name, card] of cards) {
    if (!names.has(name)) {
      card.player.stop();
      card.root.remove();
      cards.delete(name);
    }
  }
  for (const stream of streams) {
    let card = cards.get(stream.name);
    if (!card) {
      card = createCard(stream.name);
      cards.set(stream.name, card);
      container.append(card.root);
    }
    updateCard(card, stream);
  }
  updateStreamChoices(streams.map((s) => s.name));
}

function renderLatencies() {
  for (const card of cards.values()) {
    const latency = card.player.latency();
    card.latency.textContent = latency !== null ? `${latency.toFixed(1)} s` : card.player.mode === "native HLS" ? "native player" : "–";
  }
}

// ---------- recordings ----------

let streamNames = [];

function updateStreamChoices(names) {
  if (names.join("\n") === streamNames.join("\n")) return;
  streamNames = names;
  const select = $("rec-stream");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "", text: "All streams" }),
    ...names.map((name) => el("option", { value: name, text: name })),
  );
  if (names.includes(chosen)) select.value = chosen;
  refreshRecordings();
}

function chosenDay() {
  const input = $("rec-day");
  if (!input.value) {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    input.value = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  }
  const [year, month, day] = input.value.split("-").map(Number);
  const from = new Date(year, month - 1, day);
  const to = new Date(year, month - 1, day + 1);
  return { from, to };
}

/** Recordings that overlap [from, to), of one stream or (stream "") all, newest first. */
async function fetchRecordings(stream, from, to) {
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  if (stream) query.set("stream", stream);
  const recordings = await getJson(`/api/recordings?${query}`);
  return recordings.sort((a, b) => Date.parse(b.start) - Date.parse(a.start));
}

let recordingsRequest = 0;

async function refreshRecordings() {
  const request = ++recordingsRequest;
  const { from, to } = chosenDay();
  const empty = $("rec-empty");
  let recordings;
  try {
    recordings = await fetchRecordings($("rec-stream").value, from, to);
  } catch (error) {
    if (request !== recordingsRequest) return;
    $("rec-list").replaceChildren();
    showRecordingPlayer(false);
    empty.hidden = false;
    empty.textContent =
      error instanceof HttpError && error.status === 404
        ? "This agent does not record."
        : `Cannot list recordings: ${error.message}`;
    return;
  }
  if (request !== recordingsRequest) return;
  renderRecordings(recordings);
  empty.hidden = recordings.length > 0;
  empty.textContent = "No recordings on this day.";
  showRecordingPlayer(recordings.length > 0 || Boolean($("rec-video").dataset.path));
}

function showRecordingPlayer(show) {
  $("rec-player").hidden = !show;
  $("recordings").classList.toggle("without-player", !show);
}

function renderRecordings(recordings) {
  const playing = $("rec-video").dataset.path;
  const items = recordings.map((rec) => {
    const start = new Date(rec.start);
    const button = el(
      "button",
      { type: "button", class: "rec-item", "data-path": rec.path },
      el("span", { class: "rec-time", text: formatTime(start) }),
      el("span", { class: "rec-stream", text: rec.stream }),
      el("span", { class: "rec-meta muted", text: `${formatDuration(rec.duration)} · ${formatBytes(rec.bytes)}` }),
    );
    button.classList.toggle("selected", rec.path === playing);
    button.addEventListener("click", () => playRecording(rec, start));
    return el("li", {}, button);
  });
  $("rec-list").replaceChildren(...items);
}

function playRecording(rec, start) {
  const video = $("rec-video");
  video.dataset.path = rec.path;
  video.src = rec.path;
  video.play().catch(() => {});
  $("rec-caption").textContent = `${rec.stream} · ${start.toLocaleString()} · ${formatDuration(rec.duration)}`;
  for (const item of document.querySelectorAll(".rec-item")) {
    item.classList.toggle("selected", item.dataset.path === rec.path);
  }
}

// ---------- polling ----------

async function refresh() {
  const problems = [];
  await Promise.all([
    getJson("/api/status").then(renderStatus, (e) => problems.push(e.message)),
    getJson("/api/streams").then(renderStreams, (e) => problems.push(e.message)),
  ]);
  showError(problems.length > 0 ? `The agent does not answer: ${problems.join("; ")}` : "");
}

function start() {
  $("rec-filter").addEventListener("change", refreshRecordings);
  $("rec-filter").addEventListener("submit", (event) => event.preventDefault());
  refresh();
  setInterval(refresh, POLL_MS);
  setInterval(renderLatencies, 1000);
  setInterval(refreshRecordings, 30_000);
  // Stop pulling video while nobody looks at the page: it spares the board.
  document.addEventListener("visibilitychange", () => {
    for (const card of cards.values()) {
      if (document.hidden) card.player.stop();
      else if (card.root.dataset.state === "live") card.player.start();
    }
  });
}

start();
