// The guest's screens on the kiosk and on a phone: what each screen does on enter and exit,
// on top of the state machine (machine.js) and the booth's HTTP API. Text comes translated
// from the page (#booth-data); nothing here is in any one language.

import { Machine } from "./machine.js";

const booth = JSON.parse(document.getElementById("booth-data").textContent);
const KIOSK = booth.screen === "kiosk";
const CONSENT = { "X-Ephemera-Consent": "adults-consenting" };
const POLL_MS = 600;
const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;

const $ = (id) => document.getElementById(id);
const fill = (text, vars = {}) => text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? vars[k] : `{${k}}`));
const T = (key, vars) => fill(booth.text[key], vars);
const errorText = (code) => booth.errors[code] || booth.errors.generic;
const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => {
    clearTimeout(timer);
    reject(new DOMException("left the screen", "AbortError"));
  }, { once: true });
});

// An answer the screens expect and handle (a gate's 422, an expired link): not a failure.
class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || "generic";
  }
}

// One guest's turn: everything is forgotten by `reset` (and wiped on the server by `forget`).
const guest = {
  token: null, effect: null, params: {}, photos: [], job: null, shot: 1, joinCode: null, urls: [],
  reset() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    Object.assign(this, {
      token: null, effect: null, params: {}, photos: [], job: null, shot: 1, urls: [],
    });
  },
  keep(url) { this.urls.push(url); return url; },
};

function auth(token = guest.token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(method, path, { json, body, headers = {}, token, signal } = {}) {
  const init = { method, headers: { ...auth(token), ...headers }, signal, cache: "no-store" };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

function langQuery() {
  return `lang=${encodeURIComponent(booth.lang)}`;
}

function show(id, text) {
  const node = $(id);
  node.textContent = text || "";
  node.hidden = !text;
}

function insertSvg(target, markup) {
  const parsed = new DOMParser().parseFromString(markup, "image/svg+xml").documentElement;
  parsed.setAttribute("role", "img");
  parsed.setAttribute("shape-rendering", "crispEdges"); // whole modules: easy for any camera
  const title = parsed.querySelector("title");
  if (title) parsed.setAttribute("aria-label", title.textContent);
  target.replaceChildren(document.importNode(parsed, true));
}

// The booth's own Wi-Fi beside the download QR, when the booth has one (else a 404): a phone
// joins it with one scan, then downloads with no internet.
async function showWifi(turn) {
  let svg = null;
  try {
    const response = await fetch(`/ui/wifi-qr?${langQuery()}`, { cache: "no-store", signal: turn.signal });
    if (response.ok) svg = await response.text();
  } catch {
    svg = null;
  }
  if (!turn.live) return;
  if (svg) insertSvg($("wifi-qr"), svg);
  else $("wifi-qr").replaceChildren();
  $("wifi-code").hidden = !svg;
  $("take-step").hidden = !svg;
}

// Wipe the session now (delete now, done, idle, failsafe): the receipt, or null.
async function forget({ quiet = false } = {}) {
  const token = guest.token;
  guest.reset();
  if (!token) return null;
  try {
    return await api("POST", `/ui/forget?${langQuery()}`, { token });
  } catch (error) {
    if (quiet || error instanceof ApiError) return null; // already wiped (other screen, expiry)
    throw error;
  }
}

// -- the idle wipe (kiosk) -------------------------------------------------------------------

const idle = {
  timer: null, tick: null, armed: false,
  warnFor() { return Math.max(5, Math.min(15, Math.round(booth.idle_timeout_s / 3))); },
  arm() {
    this.armed = true;
    this.poke();
  },
  disarm() {
    this.armed = false;
    clearTimeout(this.timer);
    clearInterval(this.tick);
    const dialog = $("idle-dialog");
    if (dialog.open) dialog.close();
  },
  poke() {
    if (!this.armed || $("idle-dialog").open) return;
    clearTimeout(this.timer);
    const quiet = Math.max(1, booth.idle_timeout_s - this.warnFor());
    this.timer = setTimeout(() => this.warn(), quiet * 1000);
  },
  warn() {
    let left = this.warnFor();
    const dialog = $("idle-dialog");
    $("idle-text").textContent = T("idle_warning", { n: left });
    dialog.showModal();
    dialog.querySelector("[data-action=idle-stay]").focus();
    this.tick = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(this.tick);
        this.expire();
        return;
      }
      $("idle-text").textContent = T("idle_warning", { n: left });
    }, 1000);
  },
  stay() {
    clearInterval(this.tick);
    $("idle-dialog").close();
    this.poke();
  },
  expire() {
    this.disarm();
    const wiped = forget({ quiet: true }); // started before the screen changes, like wipe()
    machine.go("attract");
    machine.guard(() => wiped);
  },
};

// -- screens -----------------------------------------------------------------------------------

let stream = null;

function stopCamera() {
  if (stream) for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("preview") && ($("preview").srcObject = null);
  if (KIOSK) serverCamera.stop();
}

// The booth's own camera (camera.source gstreamer or gphoto2): the live picture is pulled from
// the server frame by frame, the still is taken there. While the camera is not live the guest
// sees "reconnecting" (never a frozen frame) and cannot press the button.
const FRAME_MS = 70; // with the fetch itself, about 10 frames a second
const serverCamera = {
  known: null, ready: false, url: null,
  async serverSide(signal) {
    if (this.known === null) {
      try {
        const state = await api("GET", "/api/camera/state", { signal });
        this.known = state.server_side === true;
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        return false; // asked again next time
      }
    }
    return this.known;
  },
  shown(ready) {
    this.ready = ready;
    $("live").hidden = !ready || capture.reviewing || !this.url;
    show("camera-status", ready ? "" : T("camera_reconnecting"));
    document.querySelector("#capture-actions [data-action=shoot]").disabled = !ready;
    $("capture-retry").disabled = !ready;
  },
  async paint(blob) {
    const url = URL.createObjectURL(blob);
    const img = $("live");
    img.src = url;
    try { await img.decode(); } catch { /* a torn frame: the next one replaces it */ }
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = url;
    img.hidden = !this.ready || capture.reviewing;
  },
  async pull(turn) {
    let checked = 0;
    while (turn.live) {
      if (!this.ready || Date.now() - checked > 1000) {
        let state = null;
        try {
          state = await api("GET", "/api/camera/state", { signal: turn.signal });
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
        }
        checked = Date.now();
        this.shown(Boolean(state?.ready));
        if (!this.ready) { await sleep(500, turn.signal); continue; }
      }
      if (capture.reviewing) { await sleep(200, turn.signal); continue; }
      const response = await fetch("/api/camera/frame.jpg", { cache: "no-store", signal: turn.signal });
      const blob = response.ok ? await response.blob() : null;
      if (!response.ok) await response.arrayBuffer().catch(() => null);
      if (!turn.live) return;
      if (!blob) { this.shown(false); await sleep(500, turn.signal); continue; }
      await this.paint(blob);
      await sleep(FRAME_MS, turn.signal);
    }
  },
  // The frame on show becomes the review picture (the still itself stays on the server).
  handOver() {
    const url = this.url;
    this.url = null;
    return url;
  },
  stop() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.ready = false;
    const img = $("live");
    if (img) { img.removeAttribute("src"); img.hidden = true; }
    if ($("camera-status")) show("camera-status", "");
  },
};

const attract = {
  enter(data) {
    guest.reset();
    stopCamera();
    show("attract-notice", data?.failed ? T("failsafe") : data?.notice || "");
  },
};

const consent = {
  enter() {
    $("consent-check").checked = false;
    show("consent-error", "");
  },
  async agree(turn) {
    if (!$("consent-check").checked) {
      show("consent-error", errorText("consent_required"));
      $("consent-check").focus();
      return;
    }
    await api("POST", "/ui/consent", {
      json: { screen: booth.screen, attestation: "adults-consenting" }, signal: turn.signal,
    });
    if (guest.joinCode) {
      machine.go("pick");
    } else {
      machine.go("effects");
    }
  },
};

const effects = {
  choose(key) {
    // A copy: the guest's choices (how many photos) must not change the menu itself.
    guest.effect = { ...booth.effects.find((effect) => effect.key === key) };
    guest.params = {};
    guest.photos = [];
    guest.shot = 1;
    const hasOptions = guest.effect.params.length > 0 || guest.effect.shot_choices.length > 0;
    machine.go(hasOptions ? "options" : (KIOSK ? "capture" : "pick"));
  },
};

// The effect's options, made from its declaration (no effect is named here): a choice is a
// radio group, a number with a range a slider (a whole number with a few values: radios), a
// yes/no a check box; an effect that takes a range of photo counts offers them as a choice.
// Every default is preselected, so "Continue" alone is the quick way through.
const STEPS = [1, 0.5, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01];
const options = {
  read: [],
  enter() {
    const effect = guest.effect;
    $("options-effect").textContent = effect.title;
    const fields = $("option-fields");
    fields.replaceChildren();
    this.read = [];
    if (effect.shot_choices.length) {
      const choices = effect.shot_choices.map((c) => ({ value: String(c.shots), label: c.label }));
      const group = this.radios("option-shots", T("photos_choice"), choices, String(effect.shots));
      fields.append(group.node);
      this.read.push(() => ["shots", Number(group.value())]);
    }
    for (const param of effect.params) {
      const field = this.field(param);
      fields.append(field.node);
      this.read.push(() => [param.name, field.value()]);
    }
  },
  field(param) {
    const id = `option-${param.name}`;
    if (param.kind === "choice") {
      const choices = param.choices.map((value, i) => ({ value, label: param.choice_labels[i] }));
      return this.radios(id, param.label, choices, param.default);
    }
    if (param.kind === "bool") return this.checkbox(id, param);
    const ranged = param.minimum !== null && param.maximum !== null;
    if (param.kind === "int" && ranged && param.maximum - param.minimum <= 4) {
      const choices = [];
      for (let n = param.minimum; n <= param.maximum; n += 1) {
        choices.push({ value: String(n), label: number(n) });
      }
      const group = this.radios(id, param.label, choices, String(param.default));
      return { node: group.node, value: () => Number(group.value()) };
    }
    return this.slider(id, param);
  },
  radios(id, legendText, choices, chosen) {
    const node = document.createElement("fieldset");
    node.className = "option";
    node.id = id;
    const legend = document.createElement("legend");
    legend.textContent = legendText;
    const row = document.createElement("div");
    row.className = "radios";
    for (const [i, choice] of choices.entries()) {
      const label = document.createElement("label");
      label.className = "radio";
      const input = document.createElement("input");
      Object.assign(input, { type: "radio", name: id, value: choice.value, id: `${id}-${i}` });
      input.checked = choice.value === chosen;
      const text = document.createElement("span");
      text.textContent = choice.label;
      label.append(input, text);
      row.append(label);
    }
    node.append(legend, row);
    return { node, value: () => node.querySelector("input:checked")?.value ?? chosen };
  },
  checkbox(id, param) {
    const node = document.createElement("label");
    node.className = "option check";
    const input = document.createElement("input");
    Object.assign(input, { type: "checkbox", id, checked: Boolean(param.default) });
    const text = document.createElement("span");
    text.textContent = param.label;
    node.append(input, text);
    return { node, value: () => input.checked };
  },
  slider(id, param) {
    const node = document.createElement("div");
    node.className = "option";
    const label = document.createElement("label");
    label.className = "option-label";
    label.htmlFor = id;
    const name = document.createElement("span");
    name.textContent = param.label;
    const shown = document.createElement("output");
    shown.htmlFor = id;
    shown.id = `${id}-value`;
    label.append(name, shown);
    const input = document.createElement("input");
    input.type = "range";
    input.id = id;
    const low = param.minimum ?? Math.min(0, param.default);
    const high = param.maximum ?? Math.max(1, 2 * param.default);
    const step = param.kind === "int" ? 1 : sliderStep(low, high, param.default);
    Object.assign(input, { min: String(low), max: String(high), step: String(step) });
    input.value = String(param.default);
    const percent = param.kind === "float" && low === 0 && high === 1;
    const digits = step === "any" ? 2 : Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const value = () => Number(Number(input.value).toFixed(digits + 2));
    const say = () => {
      const text = percent ? number(value(), { style: "percent" })
        : number(value(), { maximumFractionDigits: digits });
      shown.textContent = text;
      input.setAttribute("aria-valuetext", text);
    };
    input.addEventListener("input", say);
    say();
    node.append(label, input);
    return { node, value };
  },
  proceed() {
    const effect = guest.effect;
    const chosen = Object.fromEntries(this.read.map((read) => read()));
    if ("shots" in chosen) {
      effect.shots = chosen.shots;
      delete chosen.shots;
    }
    guest.params = chosen;
    // Faces in each photo: the declared total (or the guest's "faces", which stands for it)
    // shared over the photos, as the booth checks it.
    const total = "faces" in chosen ? chosen.faces : effect.faces;
    effect.faces_per_shot = Math.max(1, Math.floor(total / effect.shots));
    guest.photos = [];
    guest.shot = 1;
    machine.go(KIOSK ? "capture" : "pick");
  },
};

function number(value, format = {}) {
  return new Intl.NumberFormat(booth.lang, format).format(value);
}

// A slider's step: about a twentieth of its range, a round number the default lies on.
function sliderStep(low, high, preset) {
  const fits = (step) => Math.abs((preset - low) / step - Math.round((preset - low) / step)) < 1e-6;
  return STEPS.find((step) => step <= (high - low) / 20 + 1e-9 && fits(step)) || "any";
}

const capture = {
  blob: null, server: false, reviewing: false, photoId: null,
  async enter(_data, turn) {
    const shots = guest.effect.shots;
    $("capture-title").textContent = shots > 1 && guest.shot > 1
      ? T("person_turn", { n: guest.shot }) : T("photo_of", { n: guest.shot, total: shots });
    this.server = await serverCamera.serverSide(turn.signal);
    if (!turn.live) return;
    this.review(false);
    show("capture-error", "");
    this.offerRetry(false);
    if (this.server) {
      $("preview").hidden = true;
      serverCamera.shown(false);
      show("camera-status", ""); // until the first answer: no "reconnecting" flash
      return serverCamera.pull(turn);
    }
    if (!stream) {
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" },
          audio: false,
        });
      } catch (error) {
        show("capture-error", errorText("camera_unavailable"));
        return;
      }
      if (!turn.live) { stopCamera(); return; }
    }
    $("preview").srcObject = stream;
  },
  exit() {
    if (this.server) serverCamera.stop(); // frames are pulled again on the next capture
    else if (machine.pending !== "capture") stopCamera(); // the second person keeps the camera
    this.reviewing = false;
  },
  // A failed capture: "Try again" in place of the button (a gate's answer keeps the button).
  offerRetry(on) {
    $("capture-retry").hidden = !on;
    $("capture-actions").querySelector("[data-action=shoot]").hidden = on;
  },
  review(on) {
    this.reviewing = on;
    $("capture-actions").hidden = on;
    $("review-actions").hidden = !on;
    if (this.server) {
      $("preview").hidden = true;
      $("live").hidden = on || !serverCamera.ready || !serverCamera.url;
    } else {
      $("preview").hidden = on;
    }
    $("still").hidden = !on;
    if (!on && $("still").src) {
      URL.revokeObjectURL($("still").src);
      $("still").removeAttribute("src");
      this.blob = null;
    }
  },
  async shoot(turn) {
    const video = $("preview");
    if (this.server ? !serverCamera.ready : !video.videoWidth) {
      show("capture-error", errorText("camera_unavailable"));
      return;
    }
    show("capture-error", "");
    this.offerRetry(false);
    $("capture-actions").hidden = true;
    const number = $("countdown");
    number.hidden = false;
    for (const n of [3, 2, 1]) {
      number.textContent = String(n);
      number.classList.remove("pop");
      if (!reducedMotion()) { void number.offsetWidth; number.classList.add("pop"); }
      $("countdown-status").textContent = T("photo_in", { n });
      await sleep(1000, turn.signal);
    }
    number.hidden = true;
    $("countdown-status").textContent = T("smile");
    if (this.server) {
      await this.shootOnServer(turn);
      return;
    }
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext("2d");
    context.translate(canvas.width, 0); // the guest sees a mirror; the photo is the same view
    context.scale(-1, 1);
    context.drawImage(video, 0, 0);
    this.blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    if (!turn.live) return;
    $("still").src = URL.createObjectURL(this.blob);
    this.review(true);
    $("review-actions").querySelector("[data-action=keep]").focus();
  },
  // The booth's camera takes the still; it is kept (and gated) as a photo of the session now.
  async shootOnServer(turn) {
    let photo;
    try {
      photo = await api("POST", `/api/camera/capture?${uploadQuery()}`, {
        headers: CONSENT, signal: turn.signal,
      });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      $("countdown-status").textContent = "";
      $("capture-actions").hidden = false;
      show("capture-error", errorText(error.code));
      const retry = error.status >= 500 || error.code === "camera_unavailable";
      this.offerRetry(retry);
      $("capture-actions").querySelector(retry ? "#capture-retry" : "[data-action=shoot]").focus();
      return;
    }
    if (photo.session_token) guest.token = photo.session_token;
    this.photoId = photo.photo_id;
    if (!turn.live) return;
    const frame = serverCamera.handOver();
    if (frame) $("still").src = frame;
    this.review(true);
    $("review-actions").querySelector("[data-action=keep]").focus();
  },
  retake() {
    if (this.server && this.photoId) { // the kept still goes at once
      api("DELETE", `/api/photos/${this.photoId}`).catch(() => null);
      this.photoId = null;
    }
    this.review(false);
    show("capture-error", "");
    $("capture-actions").querySelector("[data-action=shoot]").focus();
  },
  async keep(turn) {
    $("review-actions").hidden = true;
    $("countdown-status").textContent = T("checking");
    if (this.server) { // already kept and checked when it was taken
      guest.photos.push(this.photoId);
      this.photoId = null;
    } else {
      try {
        const photo = await uploadPhoto(this.blob, "image/jpeg", turn.signal);
        guest.photos.push(photo.photo_id);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        this.review(false);
        show("capture-error", errorText(error.code));
        $("capture-actions").querySelector("[data-action=shoot]").focus();
        return;
      }
    }
    if (guest.shot < guest.effect.shots) {
      guest.shot += 1;
      machine.go("capture");
      return;
    }
    await startJob(turn);
  },
  async back() {
    await forget({ quiet: true });
    machine.go("effects");
  },
};

function uploadQuery() {
  return `effect=${encodeURIComponent(guest.effect.key)}&faces=${guest.effect.faces_per_shot}`;
}

async function uploadPhoto(blob, type, signal) {
  const answer = await api("POST", `/api/photos?${uploadQuery()}`, {
    body: await blob.arrayBuffer(), headers: { "Content-Type": type, ...CONSENT }, signal,
  });
  if (answer.session_token) guest.token = answer.session_token;
  return answer;
}

async function startJob(turn) {
  try {
    const job = await api("POST", "/api/jobs", {
      json: { effect: guest.effect.key, photos: guest.photos, params: guest.params },
      signal: turn.signal,
    });
    guest.job = job.job_id;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    await forget({ quiet: true });
    machine.go(KIOSK ? "capture" : "pick", { error: error.code });
    return;
  }
  if (guest.joinCode) {
    await api("POST", "/ui/handoff/deliver", {
      json: { code: guest.joinCode, job_id: guest.job }, signal: turn.signal,
    });
  }
  machine.go("progress");
}

const handoff = {
  id: null, secret: null,
  async enter(_data, turn) {
    stopCamera();
    const effect = guest.effect; // kept: the wipe below forgets everything else
    await forget({ quiet: true }); // a photo taken here first is not carried over
    guest.effect = effect;
    $("handoff-qr").replaceChildren();
    $("handoff-status").textContent = T("waiting_phone");
    const opened = await api("POST", `/ui/handoff?${langQuery()}`, {
      json: { effect: effect.key }, signal: turn.signal,
    });
    guest.effect = effect;
    this.id = opened.handoff_id;
    this.secret = opened.secret;
    insertSvg($("handoff-qr"), opened.qr_svg);
    $("handoff-qr").dataset.link = "ready";
    let joined = false;
    while (turn.live) {
      await sleep(POLL_MS * 2, turn.signal);
      let state;
      try {
        state = await api("GET", `/ui/handoff/${this.id}`, { token: this.secret, signal: turn.signal });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        machine.go("attract", { notice: errorText(error.code) });
        return;
      }
      if (state.state === "joined" && !joined) {
        joined = true;
        $("handoff-status").textContent = T("phone_joined");
        idle.poke();
      }
      if (state.state === "ready") {
        this.id = null;
        guest.token = state.session_token;
        guest.job = state.job_id;
        machine.go("progress", { fromPhone: true });
        return;
      }
    }
  },
  exit() {
    if (this.id) {
      const [id, secret] = [this.id, this.secret];
      fetch(`/ui/handoff/${id}`, { method: "DELETE", headers: auth(secret), keepalive: true })
        .catch(() => {});
    }
    this.id = null;
  },
};

// Phone: choose photos from the camera roll; each is uploaded as it is chosen (raw body).
const pick = {
  async enter(data, turn) {
    if (guest.joinCode && !guest.effect) {
      let joined;
      try {
        joined = await api("POST", "/ui/handoff/join", { json: { code: guest.joinCode }, signal: turn.signal });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        guest.joinCode = null;
        machine.go("attract", { notice: errorText(error.code) });
        return;
      }
      guest.effect = booth.effects.find((effect) => effect.key === joined.effect);
    }
    guest.photos = [];
    const shots = guest.effect.shots;
    $("pick-hint").textContent = guest.effect.title;
    show("pick-error", data?.error ? errorText(data.error) : "");
    $("upload-progress").hidden = true;
    $("upload-status").textContent = "";
    const picks = $("picks");
    picks.replaceChildren();
    for (let n = 1; n <= shots; n += 1) picks.append(this.slot(n, shots, turn));
    this.update();
  },
  slot(n, total, turn) {
    const wrap = document.createElement("div");
    wrap.className = "pick-slot";
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/jpeg,image/png,image/webp";
    input.id = `photo-input-${n}`;
    input.className = "visually-hidden";
    const label = document.createElement("label");
    label.htmlFor = input.id;
    label.className = "button secondary pick-button";
    label.textContent = T("choose_photo_n", { n });
    const thumb = document.createElement("img");
    thumb.alt = "";
    thumb.hidden = true;
    thumb.className = "thumb";
    input.addEventListener("change", () => machine.guard(() => this.chosen(n, total, input, thumb, turn)));
    wrap.append(input, label, thumb);
    return wrap;
  },
  async chosen(n, total, input, thumb, turn) {
    const file = input.files[0];
    if (!file) return;
    show("pick-error", "");
    if (guest.photos[n - 1]) { // choosing again replaces the earlier photo
      await api("DELETE", `/api/photos/${guest.photos[n - 1]}`).catch(() => {});
      guest.photos[n - 1] = undefined;
    }
    this.update();
    try {
      const photo = await uploadWithProgress(file, n, total, turn);
      guest.photos[n - 1] = photo.photo_id;
      thumb.src = guest.keep(URL.createObjectURL(file));
      thumb.hidden = false;
      $("upload-status").textContent = T("photo_ready", { n });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      input.value = "";
      thumb.hidden = true;
      $("upload-progress").hidden = true;
      $("upload-status").textContent = "";
      show("pick-error", errorText(error.code));
    }
    this.update();
  },
  update() {
    const ready = guest.photos.filter(Boolean).length === guest.effect.shots;
    document.querySelector("#screen-pick [data-action=send]").disabled = !ready;
  },
  async send(turn) {
    document.querySelector("#screen-pick [data-action=send]").disabled = true;
    await startJob(turn);
  },
  async back() {
    await forget({ quiet: true });
    if (guest.joinCode) {
      machine.go("attract");
    } else {
      machine.go("effects");
    }
  },
};

// XMLHttpRequest, not fetch: only it reports upload progress. The file is the raw body.
function uploadWithProgress(file, n, total, turn) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/photos?${uploadQuery()}`);
    xhr.setRequestHeader("Content-Type", file.type || "image/jpeg");
    xhr.setRequestHeader("X-Ephemera-Consent", CONSENT["X-Ephemera-Consent"]);
    if (guest.token) xhr.setRequestHeader("Authorization", `Bearer ${guest.token}`);
    const bar = $("upload-progress");
    bar.hidden = false;
    bar.value = 0;
    let said = -1;
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((100 * event.loaded) / event.total);
      bar.value = percent;
      if (percent - said >= 25 || percent === 100) { // announced in steps, not every byte
        said = percent;
        $("upload-status").textContent = T("uploading", { n, total, percent });
      }
    });
    xhr.addEventListener("load", () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch { /* not JSON: a generic error */ }
      if (xhr.status === 201) {
        if (answer.session_token) guest.token = answer.session_token;
        resolve(answer);
      } else {
        reject(new ApiError(xhr.status, answer));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("upload failed")));
    turn.signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

function stageText(status) {
  return status.state === "queued" ? T("stage_queued") : T("stage_running");
}

async function jobStatus(signal) {
  return api("GET", `/api/jobs/${guest.job}`, { signal });
}

// Reads the job's server-sent events (GET /api/jobs/<id>/events) and hands each status to
// onStatus. fetch, not EventSource: only fetch can send the kiosk's bearer token (phones use
// their cookie either way). Resolves "stop" (onStatus said so or the turn ended), "ended" (the
// server closed the stream) or "failed" (no stream here: poll instead); throws an ApiError
// when the session or job is gone, like a poll would.
async function streamJob(turn, onStatus) {
  const headers = { Accept: "text/event-stream" };
  if (guest.token) headers.Authorization = `Bearer ${guest.token}`;
  let reader;
  try {
    const response = await fetch(`/api/jobs/${guest.job}/events`, { headers, signal: turn.signal });
    if ([401, 403, 404].includes(response.status)) {
      throw new ApiError(response.status, await response.json().catch(() => ({})));
    }
    if (!response.ok || !response.body) return "failed";
    reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  } catch (error) {
    if (error instanceof ApiError || error.name === "AbortError") throw error;
    return "failed";
  }
  let buffer = "";
  try {
    while (turn.live) {
      const { value, done } = await reader.read();
      if (done) return "ended";
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const lines = buffer.slice(0, cut).split("\n");
        buffer = buffer.slice(cut + 2);
        const name = (lines.find((line) => line.startsWith("event:")) || "").slice(6).trim();
        const data = lines.filter((line) => line.startsWith("data:")).map((line) => line.slice(5)).join("\n");
        if (!data) continue; // the retry field or a heartbeat
        const body = JSON.parse(data);
        if (name === "gone") throw new ApiError(404, body);
        if (onStatus(body) === false) return "stop";
      }
    }
    return "stop";
  } catch (error) {
    if (error instanceof ApiError || error.name === "AbortError") throw error;
    return "ended"; // the connection broke mid-stream
  } finally {
    reader.cancel().catch(() => {});
  }
}

// Follows the job: its event stream while the server offers one, else (and once the job has
// ended, to notice a wipe from the other screen) polls. A session that is gone means the turn
// was wiped elsewhere.
async function pollJob(turn, onStatus) {
  let last = null;
  const remember = (status) => { last = status; return onStatus(status); };
  for (let streams = 0; streams < 3 && turn.live; streams += 1) {
    let outcome;
    try {
      outcome = await streamJob(turn, remember);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      guest.reset();
      machine.go("attract", { notice: T("wiped_elsewhere") });
      return;
    }
    if (outcome === "stop") return;
    if (outcome === "failed" || ["done", "failed"].includes(last?.state)) break;
  }
  while (turn.live) {
    let status;
    try {
      status = await jobStatus(turn.signal);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      guest.reset();
      machine.go("attract", { notice: T("wiped_elsewhere") });
      return;
    }
    if (onStatus(status) === false) return;
    await sleep(POLL_MS, turn.signal);
  }
}

const progress = {
  enter(data, turn) {
    $("job-progress").value = 0;
    $("job-status").textContent = T("stage_queued");
    $("progress-hint").hidden = !(data?.fromPhone) && !guest.joinCode;
    show("job-error", "");
    $("job-error-actions").hidden = true;
    let said = -1;
    return pollJob(turn, (status) => {
      const percent = Math.round(100 * (status.progress || 0));
      $("job-progress").value = percent;
      if (percent - said >= 10 || status.state !== "running") {
        said = percent;
        $("job-status").textContent = T("progress", { stage: stageText(status), percent });
      }
      if (status.state === "failed") {
        show("job-error", errorText(status.error?.error));
        $("job-error-actions").hidden = false;
        $("job-error-actions").querySelector("[data-action=again]").focus();
        return false;
      }
      if (status.outputs.some((output) => output.ready)) {
        machine.go("result", status);
        return false;
      }
      return true;
    });
  },
  async again() {
    const { effect, params } = guest;
    await forget({ quiet: true });
    Object.assign(guest, { effect, params });
    machine.go(effect ? (KIOSK ? "capture" : "pick") : "attract");
  },
};

// The result: swipe (scroll-snap) or step between outputs; each appears when it is ready.
const result = {
  index: 0, items: [], shown: new Set(), takeFor: null, target: null,
  enter(first, turn) {
    this.index = 0;
    this.shown = new Set();
    this.takeFor = null;
    const list = $("carousel");
    list.replaceChildren();
    // The menu's titles are in the guest's language; the job's own are the effect's English.
    const titles = Object.fromEntries((guest.effect?.outputs || []).map((o) => [o.name, o.title]));
    for (const output of first.outputs) output.title = titles[output.name] || output.title;
    this.titles = titles;
    this.items = first.outputs.map((output, i) => {
      const item = document.createElement("li");
      item.className = "slide pending";
      item.dataset.name = output.name;
      item.dataset.type = output.media_type || "";
      item.setAttribute("aria-roledescription", "slide");
      const caption = document.createElement("p");
      caption.className = "caption";
      caption.textContent = output.title || output.name;
      const wait = document.createElement("p");
      wait.className = "wait";
      wait.textContent = T("still_rendering");
      item.setAttribute("aria-label", T("output_counter", { n: i + 1, total: first.outputs.length }));
      item.append(wait, caption);
      list.append(item);
      return item;
    });
    this.target = null;
    list.onscroll = () => this.track();
    list.onscrollend = () => { this.target = null; this.track(); };
    this.counter();
    this.apply(first, turn);
    this.selected(turn);
    if (KIOSK) showWifi(turn);
    printer.reset();
    machine.guard(() => printer.watch(turn));
    // Polled while shown: the other outputs as they are made, and a wipe from the other
    // screen (the phone's "delete now") takes this one back to the start too.
    return pollJob(turn, (status) => {
      this.apply(status, turn);
      if (status.state === "failed") {
        machine.go("progress");
        return false;
      }
      return true;
    });
  },
  exit() {
    $("carousel").onscroll = null;
    $("carousel").onscrollend = null;
  },
  apply(status, turn) {
    status.outputs.forEach((output, i) => {
      output.title = this.titles?.[output.name] || output.title;
      if (!output.ready || this.shown.has(output.name)) return;
      this.shown.add(output.name);
      machine.guard(() => this.load(output, this.items[i], turn));
    });
  },
  async load(output, item, turn) {
    const response = await fetch(output.url, { headers: auth(), signal: turn.signal, cache: "no-store" });
    if (!response.ok) throw new ApiError(response.status, {});
    const url = guest.keep(URL.createObjectURL(await response.blob()));
    let media;
    if (output.media_type.startsWith("video/")) {
      media = document.createElement("video");
      Object.assign(media, { src: url, controls: true, loop: true, muted: true, playsInline: true });
      media.autoplay = !reducedMotion();
      media.setAttribute("aria-label", output.title || output.name);
    } else {
      media = document.createElement("img");
      media.src = url;
      media.alt = output.title || output.name;
    }
    media.className = "media";
    item.querySelector(".wait")?.remove();
    item.prepend(media);
    item.classList.remove("pending");
    item.dataset.url = url;
    if (this.items[this.index] === item) this.selected(turn);
  },
  track() {
    // The slide under the carousel's centre is the one on show (whatever the slides' widths
    // and the writing direction).
    const box = $("carousel").getBoundingClientRect();
    const centre = box.left + box.width / 2;
    const index = this.items.findIndex((item) => {
      const rect = item.getBoundingClientRect();
      return rect.left <= centre && centre < rect.right;
    });
    if (this.target !== null) { // a step is still scrolling: only its end counts
      if (index !== this.target) return;
      this.target = null;
    }
    if (index >= 0 && index !== this.index) {
      this.index = index;
      this.counter();
      machine.guard(() => this.selected(machine.turn));
    }
  },
  step(delta) {
    const next = Math.max(0, Math.min(this.items.length - 1, this.index + delta));
    this.index = next;
    this.target = next;
    this.items[next].scrollIntoView({ behavior: reducedMotion() ? "auto" : "smooth", block: "nearest", inline: "start" });
    this.counter();
    machine.guard(() => this.selected(machine.turn));
  },
  counter() {
    $("output-counter").textContent = T("output_counter", { n: this.index + 1, total: this.items.length });
    const many = this.items.length > 1;
    for (const button of document.querySelectorAll(".carousel-nav button")) button.hidden = !many;
    $("output-counter").hidden = !many;
  },
  // The output on show: on the kiosk a one-time QR link to it, on a phone the save button.
  async selected(turn) {
    const item = this.items[this.index];
    printer.render();
    if (!item || item.classList.contains("pending")) return;
    const name = item.dataset.name;
    if (KIOSK) {
      if (this.takeFor === name) return;
      this.takeFor = name;
      const take = await api("POST", `/ui/take-away/${guest.job}?output=${encodeURIComponent(name)}&${langQuery()}`,
        { signal: turn.signal });
      if (!turn.live || this.takeFor !== name) return;
      insertSvg($("take-qr"), take.qr_svg);
      $("take-qr").dataset.output = name;
      $("take-hint").textContent = T("take_hint", { minutes: Math.max(1, Math.round(take.expires_in_s / 60)) });
    } else {
      const link = $("save-link");
      link.href = item.dataset.url;
      link.download = `ephemera-${name}`;
    }
  },
  wipe() {
    idle.disarm();
    // Leave this screen in the same tick as the wipe starts: its polling stops at once and
    // never mistakes our own wipe for one from the other screen.
    const answer = forget();
    machine.go("receipt", { answer });
  },
};

// Printing the picture on show (the kiosk; a phone only where the operator allows it): the
// button only while the printer says it is ready, its problem in words otherwise.
const PRINTER_POLL_MS = 2500;
const PRINTER_PROBLEMS = ["paper", "jam", "ink", "cover", "offline"];
const printer = {
  state: null, busy: false, note: "",
  reset() {
    Object.assign(this, { state: null, busy: false, note: "" });
    $("print-box").hidden = true;
    $("print-status").textContent = "";
    $("prints-left").textContent = "";
  },
  async watch(turn) {
    while (turn.live) {
      let state = null;
      try {
        state = await api("GET", "/api/printer/state", { signal: turn.signal });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
      }
      if (!turn.live) return;
      this.state = state;
      this.render();
      if (state && state.enabled === false) return; // this booth does not print
      await sleep(PRINTER_POLL_MS, turn.signal);
    }
  },
  problem(problems) {
    const first = PRINTER_PROBLEMS.find((name) => problems?.includes(name));
    return first ? T(`printer_${first}`) : errorText("printer_not_ready");
  },
  render() {
    const state = this.state;
    const box = $("print-box");
    box.hidden = !state?.enabled || (!KIOSK && !state.offered);
    if (box.hidden) return;
    const item = result.items[result.index];
    const picture = Boolean(item && !item.classList.contains("pending")
      && (item.dataset.type || "").startsWith("image/"));
    const left = state.prints_left;
    $("print-button").hidden = !(state.offered && picture && !this.busy && left !== 0);
    $("prints-left").textContent = typeof left === "number" ? T("prints_left", { n: left }) : "";
    const text = this.busy || state.ready ? this.note : this.problem(state.problems);
    if ($("print-status").textContent !== text) $("print-status").textContent = text;
  },
  async print(turn) {
    const item = result.items[result.index];
    if (!item || this.busy) return;
    this.busy = true;
    this.note = T("printing");
    this.render();
    try {
      const answer = await api("POST", `/api/jobs/${guest.job}/outputs/${encodeURIComponent(item.dataset.name)}/print`,
        { signal: turn.signal });
      this.note = T("printed");
      if (this.state) this.state.prints_left = answer.prints_left;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.note = errorText(error.code);
    } finally {
      this.busy = false;
    }
    if (turn.live) this.render();
  },
};

const receipt = {
  async enter(data, turn) {
    $("receipt-counts").textContent = "";
    $("receipt-id").textContent = "";
    delete $("receipt-id").dataset.receipt;
    $("receipt-qr").replaceChildren();
    const answer = await data?.answer;
    if (!turn.live) return;
    const signed = answer?.receipt;
    const payload = signed?.payload;
    if (payload) {
      const time = new Date(payload.wiped_at).toLocaleTimeString(booth.lang);
      $("receipt-counts").textContent = T("receipt_counts", {
        photos: payload.photos, results: payload.results, keys: payload.keys, time,
      });
      $("receipt-id").textContent = T("receipt_id", { id: payload.receipt });
      $("receipt-id").dataset.receipt = JSON.stringify(signed);
    } else {
      $("receipt-counts").textContent = T("wiped_elsewhere");
      $("receipt-id").textContent = "";
    }
    const qr = $("receipt-qr");
    qr.replaceChildren();
    qr.hidden = !answer?.receipt_qr_svg;
    if (answer?.receipt_qr_svg) insertSvg(qr, answer.receipt_qr_svg);
  },
};

const screens = { attract, consent, effects, options, progress, result, receipt };
if (KIOSK) Object.assign(screens, { capture, handoff });
else Object.assign(screens, { pick });

// What a press of each [data-action] does on each screen.
const actions = {
  start: () => machine.go("consent"),
  agree: (turn) => consent.agree(turn),
  effect: (turn, button) => effects.choose(button.dataset.effect),
  "options-continue": () => options.proceed(),
  shoot: (turn) => capture.shoot(turn),
  retake: () => capture.retake(),
  "retry-capture": (turn) => capture.shoot(turn),
  print: (turn) => printer.print(turn),
  keep: (turn) => capture.keep(turn),
  phone: () => machine.go("handoff"),
  send: (turn) => pick.send(turn),
  // Reading order: in a right-to-left language "next" is the slide on the left.
  prev: () => result.step(-1),
  next: () => result.step(1),
  delete: () => result.wipe(),
  done: () => result.wipe(),
  again: () => progress.again(),
  restart: () => machine.go(KIOSK ? "attract" : (guest.joinCode = null, "attract")),
  "idle-stay": () => idle.stay(),
  "idle-wipe": () => idle.expire(),
  back: () => {
    const from = machine.current;
    if (from === "capture") return capture.back();
    if (from === "pick") return pick.back();
    if (from === "handoff") return machine.go("capture");
    if (from === "effects") return machine.go("consent");
    if (from === "options") return machine.go("effects");
    return machine.go("attract");
  },
};

const machine = new Machine({
  screens,
  initial: "attract",
  onFailure: () => forget({ quiet: true }),
  onChange: (name) => {
    if (!KIOSK) return;
    if (name === "attract" || name === "progress") idle.disarm();
    else idle.arm();
  },
});
// The screen being entered, so a screen's exit knows where the guest is going.
const go = machine.go.bind(machine);
machine.go = (name, data) => { machine.pending = name; go(name, data); };

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-action]");
  if (!button || button.disabled) return;
  const action = actions[button.dataset.action];
  if (!action) return;
  event.preventDefault();
  const turn = machine.turn;
  machine.guard(() => action(turn, button));
});
for (const type of ["pointerdown", "keydown", "touchstart", "wheel"]) {
  document.addEventListener(type, () => idle.poke(), { passive: true });
}
$("idle-dialog").addEventListener("cancel", (event) => { event.preventDefault(); idle.stay(); });
window.addEventListener("pagehide", () => {
  if (guest.token) {
    fetch("/api/session", { method: "DELETE", headers: auth(), keepalive: true }).catch(() => {});
  }
});

if (!KIOSK && location.pathname.endsWith("/join") && location.hash.length > 1) {
  guest.joinCode = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname); // the code is spent: off the address bar
}
machine.go("attract");
