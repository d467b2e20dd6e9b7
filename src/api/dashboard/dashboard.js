// The operations center page: polls the service's JSON API and draws the camera grid and the
// incident feed. No framework, no CDN: this file is compiled into the binary.
"use strict";

const CAMERA_POLL_MS = 2000;
const INCIDENT_POLL_MS = 3000;
const LIVE_POLL_MS = 30000;
const THUMB_REFRESH_MS = 5000;
const PAGE = 50;

const $ = (sel) => document.querySelector(sel);
const state = { cameras: new Map(), selected: "", thumbsAt: 0, incidentsKey: "", live: false, alarmed: new Set(), page: 0, total: 0 };

// Who is logged in (GET /api/v1/me): { name, shown_name, role }.
let me = null;
const ROLES = ["viewer", "operator", "admin"];
const may = (role) => me !== null && ROLES.indexOf(me.role) >= ROLES.indexOf(role);

const CAMERA_EVENTS_SHOWN = 20;

// Times as the operations center reads them: 24-hour, in the site's UTC offset (the service's
// delivery.utc_offset), whatever the browser's own zone and locale.
const UTC_OFFSET_MIN = Number(document.documentElement.dataset.utcOffsetMin) || 0;

function setConn(ok) {
  $("#conn").className = "conn " + (ok ? "ok" : "bad");
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (r.status === 401) sessionEnded();
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) {}
    throw new Error(msg);
  }
  return r.json();
}

function fmtTime(unix) {
  const local = new Date((unix + UTC_OFFSET_MIN * 60) * 1000).toISOString();
  return local.slice(0, 10) + " " + local.slice(11, 19);
}

function ago(iso) {
  if (!iso) return t("never");
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return t("ago.s", { n: Math.round(s) });
  if (s < 5400) return t("ago.min", { n: Math.round(s / 60) });
  return t("ago.h", { n: Math.round(s / 3600) });
}

// ---- cameras -----------------------------------------------------------------------------

function cameraCard(cam) {
  const node = $("#camera-card").content.firstElementChild.cloneNode(true);
  applyTexts(node);
  node.dataset.camera = cam.id;
  node.querySelector(".name").textContent = cam.name;
  node.querySelector(".id").textContent = cam.id;
  node.addEventListener("click", () => selectCamera(state.selected === cam.id ? "" : cam.id));
  const img = node.querySelector("img");
  img.addEventListener("load", () => node.querySelector(".thumb").classList.add("has-picture"));
  img.addEventListener("error", () => node.querySelector(".thumb").classList.remove("has-picture"));
  return node;
}

function drawCameras(list) {
  const grid = $("#cameras");
  const seen = new Set();
  const refreshThumbs = Date.now() - state.thumbsAt > THUMB_REFRESH_MS;
  if (refreshThumbs) state.thumbsAt = Date.now();
  for (const cam of list) {
    seen.add(cam.id);
    let node = grid.querySelector(`article[data-camera="${CSS.escape(cam.id)}"]`);
    if (!node) {
      node = cameraCard(cam);
      grid.appendChild(node);
    }
    const viewLost = cam.view === "moved" || cam.view === "covered";
    node.className = "camera " + cam.state + (cam.busy ? " active" : "") +
      (viewLost ? " view-lost" : "") + (state.selected === cam.id ? " selected" : "");
    node.querySelector(".name").textContent = cam.name;
    node.querySelector(".state").textContent = tValue("state", cam.state);
    node.querySelector(".mode").textContent = tValue("decode", cam.decode);
    node.querySelector(".codec").textContent = cam.codec ? cam.codec.toUpperCase().replace("H26", "H.26") : t("codec.unknown");
    node.querySelector(".codec").title = cam.codec_string || "";
    node.querySelector(".fps").textContent = cam.fps != null ? t("fps", { n: cam.fps }) : t("no-frames");
    node.querySelector(".gap").textContent =
      cam.since_analysed_s != null ? t("analysed", { n: Math.round(cam.since_analysed_s) }) : t("not-analysed");
    node.querySelector(".view").textContent = viewLost ? t("view." + cam.view) : "";
    node.querySelector(".view").title = viewLost ? t("since", { when: ago(cam.view_since) }) : "";
    const err = node.querySelector(".err");
    err.textContent = cam.state === "streaming" ? "" : (cam.last_error || "");
    err.title = cam.last_error || "";
    node.title = t("last-frame", { when: ago(cam.last_frame_at), n: cam.reconnects });
    const img = node.querySelector("img");
    if (cam.state === "streaming" && (refreshThumbs || !img.src)) {
      img.src = `/api/v1/cameras/${encodeURIComponent(cam.id)}/latest.jpg?width=320&t=${Date.now()}`;
    }
  }
  for (const node of [...grid.children]) {
    if (!seen.has(node.dataset.camera)) node.remove();
  }
  // The camera filter follows the camera list.
  const select = $("#filter-camera");
  const have = new Set([...select.options].map((o) => o.value));
  for (const cam of list) {
    if (!have.has(cam.id)) select.add(new Option(cam.name + " (" + cam.id + ")", cam.id));
  }
  const up = list.filter((c) => c.state === "streaming").length;
  const busy = list.filter((c) => c.busy).length;
  $("#camera-count").textContent = t("cameras.count", { up, all: list.length, busy });
  state.cameras = new Map(list.map((c) => [c.id, c]));
}

async function pollCameras() {
  try {
    const cams = await getJson("/api/v1/cameras");
    drawCameras(cams);
    drawMap(cams);
    setConn(true);
  } catch (e) {
    setConn(false);
  }
}

function selectCamera(id) {
  state.selected = id;
  state.page = 0;
  $("#filter-camera").value = id;
  for (const n of $("#cameras").children) n.classList.toggle("selected", n.dataset.camera === id);
  for (const n of document.querySelectorAll("#map .point")) n.classList.toggle("selected", n.dataset.camera === id);
  pollIncidents();
}

// ---- the map ------------------------------------------------------------------------------

// The cameras with coordinates, drawn without map tiles (the center's network is often cut off
// from the internet): each a point at its latitude and longitude, coloured by its state, the
// points of one district framed together with its name. A click selects the camera.
const SVG = "http://www.w3.org/2000/svg";
const MAP_W = 600, MAP_H = 320, MAP_PAD = 24;

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function mapState(cam) {
  if (cam.view === "moved" || cam.view === "covered") return "lost";
  if (cam.state !== "streaming") return "down";
  return cam.busy ? "busy" : "up";
}

function drawMap(cams) {
  const placed = cams.filter((c) => c.location && Number.isFinite(c.location.lat) && Number.isFinite(c.location.lon));
  $("#map-box").hidden = placed.length === 0;
  if (!placed.length) return;
  // Equirectangular around the cameras' mean latitude: fine over a city.
  const lat0 = placed.reduce((s, c) => s + c.location.lat, 0) / placed.length;
  const kx = Math.cos((lat0 * Math.PI) / 180);
  const xs = placed.map((c) => c.location.lon * kx), ys = placed.map((c) => c.location.lat);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0, 1e-6);
  const scale = Math.min((MAP_W - 2 * MAP_PAD) / Math.max(x1 - x0, span * 1e-3), (MAP_H - 2 * MAP_PAD) / Math.max(y1 - y0, span * 1e-3));
  const px = (c) => MAP_PAD + (c.location.lon * kx - x0) * scale + ((MAP_W - 2 * MAP_PAD) - (x1 - x0) * scale) / 2;
  const py = (c) => MAP_H - MAP_PAD - (c.location.lat - y0) * scale - ((MAP_H - 2 * MAP_PAD) - (y1 - y0) * scale) / 2;
  const districts = new Map();
  for (const c of placed) {
    const d = c.location.district || "";
    if (!districts.has(d)) districts.set(d, []);
    districts.get(d).push(c);
  }
  const map = $("#map");
  const nodes = [];
  for (const [name, list] of [...districts].sort()) {
    if (!name) continue;
    const [dx, dy] = [list.map(px), list.map(py)];
    const [l, r, t, b] = [Math.min(...dx) - 12, Math.max(...dx) + 12, Math.min(...dy) - 12, Math.max(...dy) + 12];
    const g = svg("g", { class: "district" });
    g.append(svg("rect", { x: l, y: t, width: r - l, height: b - t, rx: 6 }));
    const down = list.filter((c) => mapState(c) !== "up" && mapState(c) !== "busy").length;
    g.append(svg("text", { x: l + 4, y: t - 4 }, t_district(name, list.length, down)));
    nodes.push(g);
  }
  for (const c of placed) {
    const p = svg("circle", {
      cx: px(c), cy: py(c), r: 6,
      class: `point ${mapState(c)}${c.id === state.selected ? " selected" : ""}`,
      "data-camera": c.id,
    });
    p.append(svg("title", {}, `${c.name} · ${tValue("state", c.state)}${c.location.address ? " · " + c.location.address : ""}`));
    p.addEventListener("click", () => selectCamera(state.selected === c.id ? "" : c.id));
    nodes.push(p);
  }
  map.replaceChildren(...nodes);
}

function t_district(name, n, down) {
  return down ? t("map.district.down", { name, n, down }) : t("map.district", { name, n });
}

// ---- incidents ---------------------------------------------------------------------------

// The incident's pictures shown in its card, in this order: the alert, zoomed crops of the
// object and of who put it down (when seen), the spot before, who put it down, the spot after.
const PICTURE_ROLES = ["event", "object_crop", "actor_crop", "before", "actor", "after"];

function evidenceUrl(inc, ev) {
  return `/api/v1/incidents/${inc.id}/evidence/${ev.id}`;
}

function incidentCard(inc) {
  const node = $("#incident-card").content.firstElementChild.cloneNode(true);
  applyTexts(node);
  node.dataset.incident = inc.id;
  node.querySelector(".ack").addEventListener("click", () => review(inc.id, "ack", node));
  node.querySelector(".dismiss").addEventListener("click", () => review(inc.id, "dismiss", node));
  node.querySelector(".clip").addEventListener("click", () => toggleClip(inc.id, node));
  return node;
}

// Seconds of the clip shown before a marker when the operator jumps to it.
const LEAD_S = 2;

// Opens (or closes) the incident's clip in its card: the act, from a few seconds before the
// object was put down to after the alert, with both moments marked on a bar under the player.
async function toggleClip(id, node) {
  const player = node.querySelector(".player");
  if (!player.hidden) {
    player.hidden = true;
    player.querySelector("video").pause();
    return;
  }
  player.hidden = false;
  if (player.dataset.loaded) return;
  const err = player.querySelector(".clip-error");
  err.textContent = "";
  try {
    const clip = await getJson(`/api/v1/incidents/${id}/clip`);
    player.dataset.loaded = "1";
    const video = player.querySelector("video");
    video.src = clip.url;
    player.querySelector(".download").href = clip.url;
    const marks = [["put-down", clip.put_down_s], ["alert", clip.alert_s]];
    for (const [name, at] of marks) {
      const mark = player.querySelector(".mark." + name);
      const jump = player.querySelector(".to-" + name);
      const known = typeof at === "number" && clip.duration_s > 0;
      mark.hidden = jump.hidden = !known;
      if (!known) continue;
      const share = Math.min(1, Math.max(0, at / clip.duration_s));
      mark.style.left = (share * 100).toFixed(2) + "%";
      mark.title = t("clip.mark", { name: t("clip." + name), at: at.toFixed(1) });
      jump.onclick = () => {
        video.currentTime = Math.max(0, at - LEAD_S);
        video.play().catch(() => {});
      };
    }
    video.currentTime = Math.max(0, (clip.put_down_s ?? 0) - LEAD_S);
    video.play().catch(() => {});
  } catch (e) {
    err.textContent = t("clip.error", { error: e.message });
  }
}

function drawIncident(node, inc) {
  const verdict = inc.review ? inc.review.verdict : "";
  // An alarm stays on its card until the incident is reviewed.
  if (verdict) state.alarmed.delete(inc.id);
  const alarmed = state.alarmed.has(inc.id) ? " alarm" : "";
  node.className = "incident " + inc.state + (verdict ? " " + verdict : "") + alarmed;
  const cam = state.cameras.get(inc.camera_id);
  node.querySelector(".camera-name").textContent = cam ? cam.name : inc.camera_id;
  node.querySelector(".zone").textContent = inc.zone;
  node.querySelector(".state").textContent = tValue("incident", inc.state);
  const rev = inc.review;
  node.querySelector(".review").textContent = verdict
    ? [tValue("review", verdict), rev.by, rev.reason ? tValue("reason", rev.reason) : ""].filter(Boolean).join(" · ")
    : "";
  for (const el of node.querySelectorAll(".ack, .dismiss, .reason")) el.hidden = !may("operator");
  node.querySelector(".raised").textContent = fmtTime(inc.raised_at);
  const pics = node.querySelector(".pictures");
  const key = inc.evidence.map((e) => e.id + (e.deleted ? "d" : "")).join(",");
  if (pics.dataset.key !== key) {
    pics.dataset.key = key;
    pics.replaceChildren();
    for (const role of PICTURE_ROLES) {
      // The newest picture of each role (an update adds pictures).
      const ev = inc.evidence.filter((e) => e.role === role && !e.deleted).pop();
      if (!ev) continue;
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.loading = "lazy";
      img.alt = role;
      img.src = evidenceUrl(inc, ev);
      const cap = document.createElement("figcaption");
      cap.textContent = tValue("role", role);
      fig.append(img, cap);
      pics.appendChild(fig);
    }
    const clip = inc.evidence.find((e) => e.role === "clip" && !e.deleted);
    node.querySelector(".clip").hidden = !clip;
  }
  const objects = (inc.objects || []).map((o) => tValue("class", o.class)).join(", ") || t("object");
  const delivery = inc.deliveries.map((d) => tValue("event", d.event) + ": " + tValue("delivery", d.state)).join(", ");
  const last = inc.case_reports[inc.case_reports.length - 1];
  const cases = last ? t("case", { number: last.case_number, status: tValue("case", last.status) }) : "";
  node.querySelector(".facts").textContent = t("facts", {
    objects, dwell: Math.round(inc.dwell_s), confidence: inc.confidence.toFixed(2), delivery, case: cases,
  });
  node.querySelector(".ack").disabled = verdict === "acknowledged";
  node.querySelector(".dismiss").disabled = verdict === "dismissed";
}

function drawIncidents(list) {
  const feed = $("#incidents");
  const keep = new Set(list.map((i) => i.id));
  for (const node of [...feed.children]) {
    if (!keep.has(node.dataset.incident)) node.remove();
  }
  let prev = null;
  for (const inc of list) {
    let node = feed.querySelector(`article[data-incident="${inc.id}"]`);
    if (!node) node = incidentCard(inc);
    drawIncident(node, inc);
    // Newest first, in the order the service gives.
    const want = prev ? prev.nextSibling : feed.firstChild;
    if (want !== node) feed.insertBefore(node, want);
    prev = node;
  }
  if (!list.length) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = t("incidents.none");
    feed.replaceChildren(p);
  } else {
    for (const n of [...feed.children]) if (!n.dataset.incident) n.remove();
  }
}

// A date of the date inputs (YYYY-MM-DD, a day in the site's UTC offset) as unix seconds of
// its midnight there.
function siteMidnight(value) {
  return value ? Date.parse(value + "T00:00:00Z") / 1000 - UTC_OFFSET_MIN * 60 : null;
}

async function pollIncidents() {
  const params = new URLSearchParams({ limit: PAGE, offset: state.page * PAGE });
  for (const [name, input] of [["camera", "#filter-camera"], ["zone", "#filter-zone"], ["state", "#filter-state"],
                               ["review", "#filter-review"], ["delivery", "#filter-delivery"]]) {
    const v = $(input).value.trim();
    if (v) params.set(name, v);
  }
  const since = siteMidnight($("#filter-from").value);
  const until = siteMidnight($("#filter-to").value);
  if (since !== null) params.set("since", since);
  if (until !== null) params.set("until", until + 86400);
  try {
    const page = await getJson("/api/v1/incidents?" + params);
    state.total = page.total;
    const pages = Math.max(1, Math.ceil(page.total / PAGE));
    if (state.page >= pages && state.page > 0) {
      state.page = pages - 1;
      return pollIncidents();
    }
    $("#page-info").textContent = t("page.info", { page: state.page + 1, pages, total: page.total });
    $("#page-prev").disabled = state.page === 0;
    $("#page-next").disabled = state.page + 1 >= pages;
    drawIncidents(page.incidents);
    $("#incident-error").textContent = "";
    const open = page.incidents.filter((i) => i.state === "open" && !(i.review && i.review.verdict === "dismissed")).length;
    $("#summary").textContent = t("incidents.open", { n: open });
  } catch (e) {
    $("#incident-error").textContent = t("incidents.error", { error: e.message });
  }
}

// POSTs in the operator's session; throws with the service's own error text.
async function post(url, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) sessionEnded();
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) {}
    throw new Error(msg);
  }
  return r.json();
}

async function review(id, action, node) {
  const err = node.querySelector(".action-error");
  err.textContent = "";
  try {
    const reason = node.querySelector(".reason").value;
    const body = action === "dismiss" && reason ? { reason } : {};
    drawIncident(node, await post(`/api/v1/incidents/${id}/${action}`, body));
  } catch (e) {
    err.textContent = t("action.error", { action: t(action), error: e.message });
  }
}

// Dead letters: events the city system refused; an operator sends them again once it is fixed.
async function pollDeadLetters() {
  try {
    const page = await getJson("/api/v1/deliveries?state=dead&limit=50");
    const list = page.deliveries;
    $("#dead-letters").hidden = list.length === 0;
    $("#requeue-all").hidden = !may("admin");
    $("#dead-count").textContent = list.length >= 50 ? t("dead.many") : t("dead.count", { n: list.length });
    const ul = $("#dead-list");
    ul.replaceChildren(...list.map((d) => {
      const li = document.createElement("li");
      const text = document.createElement("span");
      text.textContent = `${fmtTime(d.created_at)} · ${d.camera_id} · ${tValue("event", d.event)} · ${d.last_error || "HTTP " + d.last_status} `;
      const again = document.createElement("button");
      again.textContent = t("dead.send");
      again.hidden = !may("admin");
      again.addEventListener("click", () => requeue(`/api/v1/deliveries/${d.id}/requeue`));
      li.append(text, again);
      return li;
    }));
  } catch (e) {
    $("#dead-error").textContent = t("dead.error", { error: e.message });
  }
}

// Camera events: views lost and found again. One still lost stays highlighted.
async function pollCameraEvents() {
  try {
    const page = await getJson(`/api/v1/camera-events?limit=${CAMERA_EVENTS_SHOWN}`);
    const list = page.camera_events;
    $("#camera-events").hidden = list.length === 0;
    $("#camera-event-error").textContent = "";
    const newest = new Map();
    for (const e of list) if (!newest.has(e.camera_id)) newest.set(e.camera_id, e.id);
    $("#camera-event-list").replaceChildren(...list.map((e) => {
      const li = document.createElement("li");
      const cam = state.cameras.get(e.camera_id);
      const stillLost = newest.get(e.camera_id) === e.id && cam && cam.view === e.view &&
        (e.view === "moved" || e.view === "covered");
      li.className = e.view + (stillLost ? " still-lost" : "");
      li.dataset.camera = e.camera_id;
      li.textContent = `${fmtTime(e.at)} · ${cam ? cam.name : e.camera_id} · ${tValue("view-event", e.view)}`;
      li.addEventListener("click", () => selectCamera(e.camera_id));
      return li;
    }));
  } catch (e) {
    $("#camera-events").hidden = false;
    $("#camera-event-error").textContent = t("camera-events.error", { error: e.message });
  }
}

async function requeue(url) {
  const err = $("#dead-error");
  err.textContent = "";
  try {
    await post(url);
    await pollDeadLetters();
  } catch (e) {
    err.textContent = t("dead.send-error", { error: e.message });
  }
}

$("#requeue-all").addEventListener("click", () => requeue("/api/v1/deliveries/requeue"));
$("#filter-camera").addEventListener("change", (e) => selectCamera(e.target.value));
// A changed filter shows its first page.
const refilter = () => { state.page = 0; pollIncidents(); };
for (const id of ["#filter-review", "#filter-state", "#filter-delivery", "#filter-from", "#filter-to", "#filter-zone"]) {
  $(id).addEventListener("change", refilter);
}
$("#page-prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); pollIncidents(); });
$("#page-next").addEventListener("click", () => { state.page += 1; pollIncidents(); });

// ---- the live feed and the alarm --------------------------------------------------------------

// Every alarm raised on this page: the incident, when the store recorded it and when the page
// heard of it (unix seconds), and whether the sound played and a notification was shown.
const alarms = [];
window.dumpwatchAlarms = alarms;
let audio = null;

// Browsers let a page play sound and notify only after the operator allowed it once: the
// "Alarm" button does both (and is pressed again to test the sound).
function enableAlarm() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    audio.resume();
  } catch (_) {}
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().then(drawAlarmButton);
  }
  beep();
  drawAlarmButton();
}

function drawAlarmButton() {
  const b = $("#alarm");
  const sound = audio && audio.state === "running";
  const notify = "Notification" in window && Notification.permission === "granted";
  b.className = sound ? "on" : "off";
  b.textContent = sound ? t(notify ? "alarm.both" : "alarm.sound") : t("alarm.off");
}

// Three short tones; whether they could play.
function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
  } catch (_) {
    return false;
  }
  if (audio.state !== "running") return false;
  const t0 = audio.currentTime;
  for (let i = 0; i < 3; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, t0 + i * 0.3);
    gain.gain.setValueAtTime(0, t0 + i * 0.3 + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(t0 + i * 0.3);
    osc.stop(t0 + i * 0.3 + 0.2);
  }
  return true;
}

// A new incident: sound, a notification, and its card highlighted until it is reviewed.
function raiseAlarm(change) {
  const cam = state.cameras.get(change.camera_id);
  const name = cam ? cam.name : change.camera_id;
  const sound = beep();
  drawAlarmButton();
  let notified = false;
  if ("Notification" in window && Notification.permission === "granted") {
    const n = new Notification(t("alarm.notification", { camera: name }), { tag: change.incident, requireInteraction: true });
    n.onclick = () => { window.focus(); showIncident(change.incident); };
    notified = true;
  }
  state.alarmed.add(change.incident);
  alarms.push({ incident: change.incident, recorded_at: change.recorded_at, heard_at: Date.now() / 1000, sound, notified });
  pollIncidents();
}

function showIncident(id) {
  const node = document.querySelector(`article.incident[data-incident="${id}"]`);
  if (node) node.scrollIntoView({ block: "center" });
}

// Server-sent events: the page learns of a change the moment the store takes it; the lists are
// then read again. Polling goes on, slower, in case the feed is cut (EventSource reconnects).
function connectLive() {
  const live = new EventSource("/api/v1/live");
  live.addEventListener("incident", (e) => {
    const change = JSON.parse(e.data);
    if (change.event === "raised") raiseAlarm(change);
    else pollIncidents();
  });
  for (const name of ["evidence", "review", "resync"]) live.addEventListener(name, pollIncidents);
  live.addEventListener("camera", () => { pollCameras().then(pollCameraEvents); });
  live.onopen = () => { state.live = true; };
  live.onerror = () => { state.live = false; };
}

// Polls the incidents every INCIDENT_POLL_MS without the live feed, every LIVE_POLL_MS with it.
function pollWhileNeeded(poll) {
  let last = 0;
  setInterval(() => {
    const every = state.live ? LIVE_POLL_MS : INCIDENT_POLL_MS;
    if (Date.now() - last >= every) {
      last = Date.now();
      poll();
    }
  }, INCIDENT_POLL_MS);
}

// ---- logging in ---------------------------------------------------------------------------

// Every read needs a session: the page shows the login form until there is one.
function showLogin() {
  $("main").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login-name").focus();
}

// A read or change answered 401: the session ended (timed out, logged out elsewhere, the
// account removed). Back to the login form; the page reloads after the next login.
function sessionEnded() {
  if (me === null) return;
  me = null;
  showLogin();
}

let started = false;
function startPage(who) {
  me = who;
  $("#login").hidden = true;
  $("main").hidden = false;
  $("#who").hidden = false;
  $("#who-name").textContent = who.shown_name;
  $("#who-role").textContent = tValue("role", who.role);
  if (started) {
    location.reload();
    return;
  }
  started = true;
  connectLive();
  pollCameras().then(pollIncidents).then(pollDeadLetters).then(pollCameraEvents);
  setInterval(pollCameras, CAMERA_POLL_MS);
  pollWhileNeeded(pollIncidents);
  pollWhileNeeded(pollDeadLetters);
  pollWhileNeeded(pollCameraEvents);
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#login-error").textContent = "";
  try {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("#login-name").value.trim(), password: $("#login-password").value }),
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      $("#login-password").value = "";
      $("#login-error").textContent = t(r.status === 401 ? "login.wrong" : "login.error", { error: answer.error || r.status });
      return;
    }
    $("#login-password").value = "";
    startPage(answer);
  } catch (err) {
    $("#login-error").textContent = t("login.error", { error: err.message });
  }
});

$("#logout").addEventListener("click", async () => {
  await fetch("/api/v1/logout", { method: "POST" }).catch(() => {});
  location.reload();
});

$("#alarm").addEventListener("click", enableAlarm);
$("#language").addEventListener("click", switchLanguage);
drawAlarmButton();
fetch("/api/v1/me", { cache: "no-store" })
  .then((r) => (r.ok ? r.json().then(startPage) : showLogin()))
  .catch(showLogin);
