// audiovae ui: tabs, forms posted to the JSON endpoints (each request a job whose progress is polled and which can
// be cancelled), results rendered, inputs from a file, a drop, the microphone (recorded as WAV) or the bundled example.
// No framework, no build step: the server serves this file as it is.
"use strict";

const state = { models: [], options: {}, limits: {} };

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function showError(panel, text) {
  const box = $(".error", panel);
  box.textContent = text;
  box.hidden = false;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// --- inputs: a file input's files set from a recording, an example or a drop ------------------------------------
function setFiles(input, files) {
  const transfer = new DataTransfer();
  for (const f of files) transfer.items.add(f);
  input.files = transfer.files;
  input.dispatchEvent(new Event("change"));
}

function dropped(input, files) {
  const panel = input.closest('[role="tabpanel"]');
  $(".error", panel).hidden = true;
  const list = Array.from(files);
  if (!list.length) return;  // text or a link dragged in: nothing to use
  if (!input.multiple && list.length > 1) {
    showError(panel, `Drop one file here (${list.length} were dropped).`);
    return;
  }
  const odd = list.find((f) => f.type && !/^(audio|video)\//.test(f.type));  // an unknown type: the server decides
  if (odd) {
    showError(panel, `${odd.name}: not an audio file (${odd.type}); drop a recording (WAV, FLAC, MP3, OGG, ...).`);
    return;
  }
  setFiles(input, list);
}

function dropZone(zone) {
  const input = document.getElementById(zone.dataset.for);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();  // allows the drop
    e.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (e) => { if (!zone.contains(e.relatedTarget)) zone.classList.remove("over"); });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    dropped(input, e.dataTransfer.files);
  });
}

async function loadExample(button) {
  const input = document.getElementById(button.dataset.for);
  const panel = button.closest('[role="tabpanel"]');
  $(".error", panel).hidden = true;
  button.disabled = true;
  try {
    const response = await fetch(`/api/examples/${button.dataset.example}`);
    if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
    setFiles(input, [new File([await response.blob()], button.dataset.example, { type: "audio/wav" })]);
  } catch (err) {
    showError(panel, `Could not load the example: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

function musicExample() {  // the Music tab has no input file: settings that give a quick first result
  $('#music-form input[value="sample"]').checked = true;
  musicMode();
  const values = { seed: 7, seconds: 4, temperature: 0.9, count: 2 };
  for (const [name, value] of Object.entries(values)) $(`#music-${name}`).value = String(value);
}

// --- tabs -------------------------------------------------------------------------------------------------------
function showTab(tab) {
  for (const t of $$('[role="tab"]')) {
    const selected = t === tab;
    t.setAttribute("aria-selected", String(selected));
    $("#" + t.getAttribute("aria-controls")).hidden = !selected;
  }
}

// --- models and menus -------------------------------------------------------------------------------------------
function fillSelect(select, values, labels = values) {
  select.replaceChildren(...values.map((v, i) => el("option", { value: v, text: labels[i] })));
}

function fillSpeakers() {
  const model = state.models.find((m) => m.name === $("#convert-model").value);
  const speakers = model ? model.speakers : [];
  fillSelect($("#convert-speaker"), speakers.map((s) => s.name),
    speakers.map((s) => [s.name, s.voice, s.sex, s.median_f0_hz ? `F0 ${Math.round(s.median_f0_hz)} Hz` : ""]
      .filter(Boolean).join(" · ")));
  const oneShot = Boolean(model && model.one_shot);
  $(".one-shot").hidden = !oneShot;
  if (!oneShot && $("#convert-reference").files.length) {  // one chosen for another model must not travel with this
    setFiles($("#convert-reference"), []);  // (its change event frees the speaker menu)
  }
}

function renderModels() {
  const list = $("#model-list");
  list.replaceChildren();
  for (const m of state.models) {
    const card = el("article", { class: "model", "data-model": m.name });
    card.append(el("h2", { text: m.name }), el("p", { class: "where", text: m.bundled ? `bundled · ${m.about}` : m.path }));
    if (m.task === "error") {
      card.append(el("p", { class: "error", text: m.error }));
      list.append(card);
      continue;
    }
    const dl = el("dl");
    for (const [k, v] of Object.entries(m.summary)) dl.append(el("dt", { text: k }), el("dd", { text: v }));
    card.append(dl);
    if (m.speakers.length) {
      const table = el("table", { class: "speakers" });
      table.append(el("tr", {}, ...["#", "name", "voice", "sex", "median F0"].map((h) => el("th", { text: h }))));
      for (const s of m.speakers) {
        table.append(el("tr", {}, ...[s.index, s.name, s.voice || "", s.sex || "",
          s.median_f0_hz ? `${s.median_f0_hz} Hz` : ""].map((v) => el("td", { text: String(v) }))));
      }
      card.append(table);
    }
    if (m.curve) {
      card.append(el("img", { class: "curve", alt: `training curves of ${m.name}`,
        src: `/api/models/${encodeURIComponent(m.name)}/curve.png` }));
    } else {
      card.append(el("p", { class: "note", text: m.bundled
        ? "No training curves: the bundled file holds the weights, not the training log. Its recipe writes one " +
          "(log.csv in the run's folder); serve that folder with audiovae ui --models to see them."
        : "No training curves: only a training run's model.safetensors has its log.csv beside it." }));
    }
    const details = el("details", {}, el("summary", { text: "configuration and recorded numbers" }));
    details.append(el("pre", { text: JSON.stringify({ model: m.config, mel: m.mel, info: m.info }, null, 2) }));
    card.append(details);
    list.append(card);
  }
}

async function loadModels() {
  try {
    const response = await fetch("/api/models");
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    Object.assign(state, body);
  } catch (err) {
    for (const panel of $$('[role="tabpanel"]')) showError(panel, `Could not list the models: ${err.message}`);
    return;
  }
  for (const select of $$("select[data-task]")) {
    const names = state.models.filter((m) => m.task === select.dataset.task).map((m) => m.name);
    fillSelect(select, names);
    if (!names.length) {  // nothing to run this tab with: say so instead of failing on the click
      const panel = select.closest('[role="tabpanel"]');
      $("button.run", panel).disabled = true;
      showError(panel, `No ${select.dataset.task} model is available: add one with audiovae ui --models DIR.`);
    }
  }
  fillSelect($("#convert-vocoder"), ["", ...state.options.vocoders],
    ["default (the model's own, else mel-griffin-lim)", ...state.options.vocoders]);
  fillSpeakers();
  renderModels();
  for (const b of $$("button.example[data-example]")) b.title = `Load ${state.examples[b.dataset.example]}`;
  const l = state.limits;
  $("#limits").textContent = `Uploads: any common audio format, up to ${l.max_upload_mb} MB and ${l.max_seconds} s ` +
    `per clip. Music: up to ${l.max_music_seconds} s and ${l.max_count} clips per run.`;
  $("#music-seconds").max = l.max_music_seconds;
  $("#music-count").max = l.max_count;
  document.body.dataset.ready = "true";
}

// --- running a form ---------------------------------------------------------------------------------------------
function renderResult(panel, body) {
  const results = $(".results", panel);
  results.replaceChildren();
  for (const c of body.clips) {
    const fig = el("figure", { class: "clip" });
    fig.append(el("figcaption", { text: `${c.name} · ${c.seconds.toFixed(2)} s · ${c.sample_rate} Hz` }),
      el("audio", { controls: "", src: c.url, preload: "auto" }),
      el("a", { href: c.url, download: c.name, class: "download", text: "Download" }));
    results.append(fig);
  }
  for (const [title, url] of Object.entries(body.images)) {
    results.append(el("img", { class: "spectrogram", src: url, alt: `${title}: before and after` }));
  }
  for (const note of body.notes) results.append(el("p", { class: "note", text: note }));
}

function newJobId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(job) {  // "fitting the reference voice: step 57 of 350"
  const stage = job.stage.charAt(0).toUpperCase() + job.stage.slice(1);
  return job.total ? `${stage}: step ${job.step} of ${job.total}` : `${stage}…`;
}

// The progress row of a running job: elapsed seconds from the page's clock, stage and steps polled from the server.
function watch(panel, job) {
  const row = $(".progress", panel), bar = $("progress", row), stage = $(".stage", row);
  const elapsed = $(".elapsed", row), cancel = $("button.cancel", row);
  const started = performance.now();
  let active = true;
  stage.textContent = "Sending…";
  bar.removeAttribute("value");  // indeterminate until a stage counts its steps
  cancel.disabled = false;
  cancel.textContent = "Cancel";
  const shown = setTimeout(() => {  // a quick job never shows it
    row.hidden = false;
    $(".status", panel).textContent = "";
  }, 1000);
  const clock = setInterval(() => {
    elapsed.textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  (async () => {
    while (active) {
      await sleep(400);
      if (!active) break;
      try {
        const response = await fetch(`/api/jobs/${job}`);
        if (!response.ok || !active) continue;
        const body = await response.json();
        stage.textContent = body.state === "queued" ? "Waiting for another request to finish…" : describe(body);
        if (body.total) { bar.max = body.total; bar.value = body.step; } else bar.removeAttribute("value");
      } catch { /* a missed poll: the next one says */ }
    }
  })();
  return () => {
    active = false;
    clearTimeout(shown);
    clearInterval(clock);
    row.hidden = true;
    return (performance.now() - started) / 1000;
  };
}

function tooBig(form) {
  const limit = state.limits.max_upload_mb * 1e6;
  for (const input of $$('input[type="file"]', form)) {
    if (input.closest("[hidden]")) continue;
    for (const f of input.files) {
      if (f.size > limit) return `${f.name}: ${(f.size / 1e6).toFixed(1)} MB is over the ${state.limits.max_upload_mb} MB upload limit`;
    }
  }
  return null;
}

async function submit(form, event) {
  event.preventDefault();
  const panel = form.closest('[role="tabpanel"]');
  const status = $(".status", panel), button = $("button.run", form);
  $(".error", panel).hidden = true;
  const problem = tooBig(form);  // said at once, before a large upload the server would refuse anyway
  if (problem) {
    showError(panel, problem);
    return;
  }
  $(".results", panel).replaceChildren();
  button.disabled = true;
  status.textContent = "Working…";
  const job = newJobId(), controller = new AbortController();
  panel.dataset.job = job;
  let cancelled = false;
  const cancel = $(".progress button.cancel", panel);
  cancel.onclick = async () => {  // the server stops the job at its next check and the request answers 409
    cancelled = true;
    cancel.disabled = true;
    cancel.textContent = "Cancelling…";
    try {
      const response = await fetch(`/api/jobs/${job}/cancel`, { method: "POST" });
      if (!response.ok) throw new Error(response.statusText);
    } catch {
      controller.abort();  // no word from the server: at least the page is free again
    }
    setTimeout(() => controller.abort(), 15000);  // nor a stop within 15 s
  };
  const stop = watch(panel, job);
  try {
    const response = await fetch(`${form.dataset.endpoint}?job=${job}`,
      { method: "POST", body: new FormData(form), signal: controller.signal });
    let body;
    try { body = await response.json(); } catch { body = { error: `${response.status} ${response.statusText}` }; }
    const seconds = stop();
    if (cancelled && response.status === 409) {
      status.textContent = `Cancelled after ${seconds.toFixed(1)} s. Server: ${body.error}.`;
      return;
    }
    if (!response.ok) throw new Error(body.error || response.statusText);
    renderResult(panel, body);
    status.textContent = `Done in ${seconds.toFixed(1)} s.`;
  } catch (err) {
    stop();
    status.textContent = "";
    if (cancelled && err.name === "AbortError") {
      status.textContent = "Cancelled; the server had not confirmed that it stopped.";
      return;
    }
    showError(panel, err instanceof TypeError  // fetch itself failed: no answer came back
      ? `No answer from the server (${err.message}): is audiovae ui still running? A request over ` +
        `${state.limits.max_request_mb} MB in all is also cut off this way.`
      : err.message);
  } finally {
    button.disabled = false;
    cancel.onclick = null;
  }
}

// --- microphone -------------------------------------------------------------------------------------------------
function wavFile(chunks, rate, name = "recording.wav") {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const buffer = new ArrayBuffer(44 + 2 * n), view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const c of chunks) {
    for (const x of c) { view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true); offset += 2; }
  }
  return new File([buffer], name, { type: "audio/wav" });
}

async function toggleRecording(button) {
  const input = document.getElementById(button.dataset.for);
  const panel = button.closest('[role="tabpanel"]');
  if (button.recording) {
    button.recording.stop();
    return;
  }
  let stream;
  try {
    if (!navigator.mediaDevices) {
      throw new Error("the browser allows recording only on http://127.0.0.1, http://localhost or over HTTPS; " +
        "open the page there");
    }
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(panel, `No microphone: ${err.message}. Choose a file instead.`);
    return;
  }
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const processor = ctx.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  processor.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(processor);
  processor.connect(ctx.destination);
  button.textContent = "Stop";
  button.classList.add("on");
  button.recording = {
    stop() {
      processor.disconnect(); source.disconnect();
      stream.getTracks().forEach((t) => t.stop());
      const file = wavFile(chunks, ctx.sampleRate, button.dataset.name);
      ctx.close();
      setFiles(input, [file]);
      button.recording = null;
      button.textContent = "Record";
      button.classList.remove("on");
    },
  };
}

// --- wiring -----------------------------------------------------------------------------------------------------
function musicMode() {
  const mode = $('#music-form input[name="mode"]:checked').value;
  for (const node of $$("#music-form [data-modes]")) node.hidden = !node.dataset.modes.split(" ").includes(mode);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of $$('[role="tab"]')) tab.addEventListener("click", () => showTab(tab));
  for (const form of $$("form[data-endpoint]")) form.addEventListener("submit", (e) => submit(form, e));
  for (const button of $$("button.record")) button.addEventListener("click", () => toggleRecording(button));
  for (const button of $$("button.example[data-for]")) button.addEventListener("click", () => loadExample(button));
  $("#music-example").addEventListener("click", musicExample);
  for (const zone of $$(".drop[data-for]")) dropZone(zone);
  for (const type of ["dragover", "drop"]) {  // a file dropped beside a zone must not replace the page
    document.addEventListener(type, (e) => {
      if (e.defaultPrevented) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "none";
    });
  }
  for (const button of $$("button.clear")) {
    const input = document.getElementById(button.dataset.for);
    button.addEventListener("click", () => setFiles(input, []));
    input.addEventListener("change", () => { button.hidden = !input.files.length; });
  }
  for (const input of $$('input[type="file"]')) {
    input.addEventListener("change", () => {
      const preview = $(`audio.preview[data-for="${input.id}"]`);
      if (!preview) return;
      if (preview.src) URL.revokeObjectURL(preview.src);
      preview.hidden = !input.files.length;
      if (input.files.length) preview.src = URL.createObjectURL(input.files[0]);
    });
  }
  $("#convert-model").addEventListener("change", fillSpeakers);
  $("#convert-reference").addEventListener("change", (e) => { $("#convert-speaker").disabled = e.target.files.length > 0; });
  $("#denoise-strength").addEventListener("input", (e) => { $('output[for="denoise-strength"]').textContent = e.target.value; });
  for (const radio of $$('#music-form input[name="mode"]')) radio.addEventListener("change", musicMode);
  musicMode();
  loadModels();
});
