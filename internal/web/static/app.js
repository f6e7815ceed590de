// The Cubicle dashboard: the public API with the key kept in this tab's
// sessionStorage. No framework: one render function per part of the page.

const KEY = "cubicle.api_key";
const THUMB_EVERY_MS = 3000;
const LIST_EVERY_MS = 5000;

const $ = (sel) => document.querySelector(sel);
const state = {
  key: sessionStorage.getItem(KEY),
  sandboxes: [],
  tokens: new Map(), // sandbox id -> access token (for thumbnails)
  thumbs: new Map(), // sandbox id -> object URL of the last thumbnail
  view: null, // {id, viewOnly, tokenID, url}
  timers: [],
};

class APIError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401 && path.startsWith("/v1/sandboxes") && !path.includes("/stream")) logout("The API key was refused.");
    throw new APIError(r.status, data);
  }
  return data;
}

// ---- login ----

function showLogin(message) {
  $("#login").hidden = false;
  $("#main").hidden = true;
  $("#logout").hidden = true;
  $("#login-error").textContent = message || "";
  $("#key").focus();
}

async function login(key) {
  state.key = key;
  try {
    await api("GET", "/v1/sandboxes?limit=1");
  } catch (e) {
    state.key = null;
    showLogin(e.message);
    return;
  }
  sessionStorage.setItem(KEY, key);
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#logout").hidden = false;
  start();
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  state.key = null;
  state.timers.forEach(clearInterval);
  state.timers = [];
  closeViewer();
  showLogin(message);
}

// ---- list ----

function ago(iso) {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return span(Math.abs(s)) + (s < 0 ? " from now" : " ago");
}

function until(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return s <= 0 ? "now" : "in " + span(s);
}

function span(s) {
  if (s < 90) return s + "s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

async function refresh() {
  try {
    const page = await api("GET", "/v1/sandboxes?state=running,paused,starting");
    state.sandboxes = page.sandboxes;
    $("#error").textContent = "";
  } catch (e) {
    $("#error").textContent = "Listing sandboxes failed: " + e.message;
    return;
  }
  render();
}

function render() {
  const body = $("#sandboxes tbody");
  const rows = state.sandboxes.map((s) => {
    const img = el("img", { alt: "screen of " + s.id });
    if (state.thumbs.has(s.id)) img.src = state.thumbs.get(s.id);
    const md = Object.entries(s.metadata || {}).map(([k, v]) => el("span", { class: "chip" }, `${k}=${v}`));
    const running = s.state === "running";
    const actions = el("td", { class: "actions" },
      el("button", { onclick: () => openViewer(s.id, true), ...(running ? {} : { disabled: "" }) }, "View"),
      el("button", { onclick: () => openViewer(s.id, false), ...(running ? {} : { disabled: "" }) }, "Take over"),
      el("button", { onclick: () => extend(s) }, "+5 min"),
      el("button", { class: "danger", onclick: () => kill(s.id) }, "Kill"));
    return el("tr", { "data-id": s.id, "data-state": s.state },
      el("td", { class: "thumb" }, img),
      el("td", { class: "id" }, s.id),
      el("td", { class: "state-" + s.state }, s.state),
      el("td", {}, s.template),
      el("td", {}, ...md),
      el("td", { title: s.started_at }, ago(s.started_at)),
      el("td", { title: s.end_at }, until(s.end_at)),
      actions);
  });
  body.replaceChildren(...rows);
  $("#empty").hidden = rows.length > 0;
}

// ---- thumbnails ----

async function accessToken(id) {
  if (!state.tokens.has(id)) {
    const s = await api("GET", "/v1/sandboxes/" + id);
    state.tokens.set(id, s.access_token);
  }
  return state.tokens.get(id);
}

async function thumbnail(s) {
  if (s.state !== "running") return;
  try {
    const token = await accessToken(s.id);
    const r = await fetch(`/sandboxes/${s.id}/agent/v1/screenshot?format=jpeg&quality=60&width=320`,
      { headers: { "X-Access-Token": token }, cache: "no-store" });
    if (!r.ok) return;
    const url = URL.createObjectURL(await r.blob());
    const old = state.thumbs.get(s.id);
    state.thumbs.set(s.id, url);
    const img = document.querySelector(`tr[data-id="${s.id}"] img`);
    if (img) img.src = url;
    if (old) URL.revokeObjectURL(old);
  } catch (e) {
    // A sandbox that just went away; the next list drops it.
  }
}

async function thumbnails() {
  if (document.hidden) return;
  await Promise.all(state.sandboxes.map(thumbnail));
}

// ---- actions ----

async function kill(id) {
  if (!confirm(`Kill sandbox ${id}? Everything in it is lost.`)) return;
  try {
    await api("DELETE", "/v1/sandboxes/" + id);
    if (state.view?.id === id) closeViewer();
  } catch (e) {
    $("#error").textContent = "Kill failed: " + e.message;
  }
  refresh();
}

async function extend(s) {
  const left = Math.max(0, Math.round((Date.parse(s.end_at) - Date.now()) / 1000));
  try {
    await api("POST", `/v1/sandboxes/${s.id}/timeout`, { timeout_s: left + 300 });
  } catch (e) {
    $("#error").textContent = "Extending failed: " + e.message;
  }
  refresh();
}

async function create(form) {
  const f = new FormData(form);
  const status = $("#create-status");
  status.textContent = "Creating… (the desktop starts in a few seconds)";
  form.querySelector("button").disabled = true;
  try {
    const s = await api("POST", "/v1/sandboxes", {
      template: f.get("template"),
      resolution: { width: Number(f.get("width")), height: Number(f.get("height")) },
      timeout_s: Number(f.get("minutes")) * 60,
    });
    state.tokens.set(s.id, s.access_token);
    status.textContent = "Created " + s.id;
  } catch (e) {
    status.textContent = "";
    $("#error").textContent = "Create failed: " + e.message;
  } finally {
    form.querySelector("button").disabled = false;
  }
  refresh();
}

// ---- live view ----

async function openViewer(id, viewOnly) {
  let u;
  try {
    u = await api("POST", `/v1/sandboxes/${id}/stream`, { view_only: viewOnly });
  } catch (e) {
    $("#error").textContent = "Live view failed: " + e.message;
    return;
  }
  const old = state.view;
  state.view = { id, viewOnly, tokenID: u.token_id, url: u.url };
  $("#viewer").hidden = false;
  $("#viewer-id").textContent = id;
  const mode = $("#viewer-mode");
  mode.textContent = viewOnly ? "view only" : "in control";
  mode.className = "mode " + (viewOnly ? "view" : "control");
  $("#viewer-switch").textContent = viewOnly ? "Take over" : "Hand back";
  $("#viewer-status").textContent = "Connecting…";
  $("#viewer-open").href = u.url;
  $("#viewer-frame").src = u.url;
  if (old) revoke(old);
}

function revoke(v) {
  api("DELETE", `/v1/sandboxes/${v.id}/stream/${v.tokenID}`).catch(() => {});
}

function closeViewer() {
  if (state.view) revoke(state.view);
  state.view = null;
  $("#viewer-frame").src = "about:blank";
  $("#viewer").hidden = true;
}

window.addEventListener("message", (e) => {
  if (e.origin !== location.origin || !e.data?.cubicleView) return;
  $("#viewer-status").textContent = e.data.detail || e.data.cubicleView;
  $("#viewer").dataset.state = e.data.cubicleView;
});

// ---- start ----

function start() {
  refresh().then(thumbnails);
  state.timers.push(setInterval(refresh, LIST_EVERY_MS));
  state.timers.push(setInterval(thumbnails, THUMB_EVERY_MS));
}

$("#login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  login($("#key").value.trim());
});
$("#logout").addEventListener("click", () => logout());
$("#create").addEventListener("submit", (e) => {
  e.preventDefault();
  create(e.target);
});
$("#viewer-close").addEventListener("click", closeViewer);
$("#viewer-switch").addEventListener("click", () => {
  if (state.view) openViewer(state.view.id, !state.view.viewOnly);
});

if (state.key) login(state.key);
else showLogin();
