// mvstylizer studio: the page's logic. Plain JavaScript, no framework, nothing loaded from elsewhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SESSION_KEY = "mvstylizer-studio-session";
  const VIDEO_EXT = /\.(mp4|mov|m4v|mkv|webm|avi)$/i;
  const IMAGE_EXT = /\.(jpe?g|png|webp|bmp|tiff?)$/i;

  const state = {
    session: null,
    info: null,
    video: null,          // the upload: {id, name, width, height, fps, frames, frames_preview: [...]}
    styleKey: null,       // "upload:<id>" or "gallery:<name>"
    styles: [],           // uploaded styles of this tab
    preview: null,
    frame: 0,
    jobs: new Map(),
    previewSeq: 0,
    previewAbort: null,
    previewTimer: null,
    busy: { video: false, style: false },
    // Only a tab's latest choice of video, and of style, applies: each choice has a number, and an
    // upload still arriving for an older one is aborted (otherwise whichever finished last won).
    choice: { video: 0, style: 0 },
    uploading: { video: null, style: null },   // the AbortController of the upload of the latest choice
    unreachable: false,   // the server could not be reached when the event stream broke
    sessionLost: false,   // the server no longer knows this tab's session (it restarted)
  };

  // ------------------------------------------------------------------ errors
  function showError(message) {
    $("error-text").textContent = message;
    $("error").hidden = false;
  }
  function clearError() { $("error").hidden = true; $("error-text").textContent = ""; }
  $("error-close").addEventListener("click", clearError);

  // What the server found wrong with a file it took anyway (frames lost, a tiny style photo).
  function showWarnings(id, warnings) {
    $(id).textContent = (warnings || []).join(" ");
    $(id).hidden = !(warnings && warnings.length);
  }

  // ------------------------------------------------------------------ server calls
  function withSession(url) {
    return url + (url.includes("?") ? "&" : "?") + "session=" + encodeURIComponent(state.session);
  }

  async function api(path, { method = "GET", json, signal } = {}) {
    const headers = { "X-Studio-Session": state.session || "" };
    let body;
    if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
    let res;
    try {
      res = await fetch(path, { method, headers, body, signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new Error("The studio server cannot be reached. Is it still running?");
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((data && data.error) || `The server refused the request (${res.status}).`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  // Uploads go as the raw body (the server streams it to disk and stops at its size limit);
  // XMLHttpRequest because fetch cannot report upload progress.
  function upload(path, file, onProgress, signal) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      signal.addEventListener("abort", () => xhr.abort());
      xhr.onabort = () => reject(new DOMException("a newer choice replaced this upload", "AbortError"));
      xhr.open("POST", path + "?name=" + encodeURIComponent(file.name));
      xhr.setRequestHeader("X-Studio-Session", state.session);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (ev) => { if (ev.lengthComputable && onProgress) onProgress(ev.loaded / ev.total); };
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
        else reject(new Error((data && data.error) || `Upload refused (${xhr.status}).`));
      };
      xhr.onerror = () => reject(new Error("The upload was interrupted: the studio server cannot be reached, or it closed the connection (file too large?)."));
      xhr.send(file);
    });
  }

  async function startSession() {
    const saved = sessionStorage.getItem(SESSION_KEY);
    if (saved) {
      state.session = saved;
      try { await api("/api/jobs"); return; } catch (e) { if (e.status !== 401) throw e; }
    }
    const res = await fetch("/api/session", { method: "POST" });
    if (!res.ok) throw new Error("The studio could not start a session.");
    state.session = (await res.json()).session;
    sessionStorage.setItem(SESSION_KEY, state.session);
  }

  // ------------------------------------------------------------------ formatting
  const pct = (x) => `${Math.round(x * 100)}%`;
  function fmtTime(s) {
    if (s == null || !isFinite(s)) return "";
    const m = Math.floor(s / 60), r = s - m * 60;
    return `${m}:${r.toFixed(1).padStart(4, "0")}`;
  }
  function fmtSeconds(s) {
    if (!isFinite(s)) return "";
    return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }
  function icon(path) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", path);
    svg.append(p);
    return svg;
  }
  const ICON_DOWNLOAD = "M12 4v11m0 0 4.5-4.5M12 15l-4.5-4.5M5 19h14";
  const ICON_X = "M6 6l12 12M18 6 6 18";

  // ------------------------------------------------------------------ info: models, gallery, limits
  async function loadInfo() {
    const info = await api("/api/info");
    state.info = info;
    $("edge-chip").textContent = "edge: " + info.edge;
    const mpx = (info.limits.video_pixels / 1e6).toFixed(1);
    $("video-limits").textContent = `MP4, MOV, MKV, WebM · up to ${info.limits.upload}, ${mpx} Mpx a frame`;
    $("footer").textContent = `Files stay on this machine, in the studio's work folder (${info.limits.work} at most; ` +
      `kept ${info.limits.ttl_hours} h). Other tabs cannot see them.`;
    if (info.model_error) showError(info.model_error);
    const select = $("model");
    select.replaceChildren();
    const main = info.models.filter((m) => !m.experimental);
    const experimental = info.models.filter((m) => m.experimental);
    const option = (m) => el("option", { value: m.name, title: m.description,
                                         text: m.default ? `${m.name} (default)` : m.name });
    for (const m of main) select.append(option(m));
    if (experimental.length) {
      const group = el("optgroup", { label: "Experimental" });
      for (const m of experimental) group.append(option(m));
      select.append(group);
    }
    const def = info.models.find((m) => m.default);
    if (def) select.value = def.name;
    describeModel();
    const grid = $("styles");
    for (const g of info.gallery) grid.append(styleTile(g.key, g.name, g.thumb));
    $("gallery-hint").textContent = info.gallery.length
      ? "Or pick one of the photos that ship with scikit-image."
      : "Upload a photo whose colours you like (install scikit-image for a gallery).";
  }

  function currentModel() { return (state.info.models || []).find((m) => m.name === $("model").value); }
  function describeModel() {
    const m = currentModel();
    if (!m) { $("model-desc").textContent = ""; return; }
    const kind = m.spatial ? "varies its look over the picture" : "one global look";
    const lut = m.lut ? "renders also export a .cube LUT" : "no LUT export";
    $("model-desc").textContent = `${m.label.charAt(0).toUpperCase()}${m.label.slice(1)}: ${kind}; ${lut}.`;
    $("model-desc").title = m.description + (m.lut ? "" : ". No LUT: " + m.lut_reason + ".");
  }

  // A new choice of ``kind``: the upload of the previous one, if still arriving, is dropped.
  function newChoice(kind) {
    if (state.uploading[kind]) state.uploading[kind].abort();
    state.uploading[kind] = null;
    return ++state.choice[kind];
  }

  // ------------------------------------------------------------------ video
  async function setVideo(file) {
    if (!file) return;
    if (!VIDEO_EXT.test(file.name) && !(file.type || "").startsWith("video/")) {
      showError(`${file.name} is not a video: the studio takes .mp4, .mov, .m4v, .mkv, .webm or .avi files.`);
      return;
    }
    if (state.info && file.size > state.info.limits.upload_bytes) {
      showError(`${file.name} is larger than ${state.info.limits.upload}, the studio's limit for videos.`);
      return;
    }
    const drop = $("video-drop");
    const before = drop.dataset.state;
    const n = newChoice("video");
    const ctrl = state.uploading.video = new AbortController();
    drop.dataset.state = "busy";
    state.busy.video = true;
    updateRun();
    $("video-busy-text").textContent = "Uploading…";
    try {
      const video = await upload("/api/videos", file, (f) => {
        $("video-busy-text").textContent = f < 1 ? `Uploading ${pct(f)}` : "Reading the video…";
      }, ctrl.signal);
      if (n !== state.choice.video) return;
      clearError();
      showWarnings("video-warning", video.warnings);
      state.video = video;
      state.preview = null;
      drop.dataset.state = "filled";
      $("video-name").textContent = video.name;
      $("video-name").title = video.name;  // a long name is cut short with an ellipsis
      const length = [video.duration ? fmtSeconds(video.duration) : null,
                      `${video.frames_exact ? "" : "~"}${video.frames} frames`].filter(Boolean).join(" · ");
      $("video-meta").textContent = `${video.width}×${video.height} · ${Math.round(video.fps * 100) / 100} fps`;
      $("video-length").textContent = length;
      const mid = video.frames_preview[Math.floor(video.frames_preview.length / 2)] || video.frames_preview[0];
      $("video-poster").src = withSession(mid.url);
      document.documentElement.style.setProperty("--aspect", `${video.width} / ${video.height}`);
      state.frame = Math.min(1, video.frames_preview.length - 1);
      renderFilmstrip();
      showFrameImages(false);
      schedulePreview(0);
    } catch (e) {
      if (n !== state.choice.video) return;
      drop.dataset.state = state.video ? "filled" : (before === "busy" ? "empty" : before);
      showError(e.message);
    } finally {
      if (n === state.choice.video) {
        state.uploading.video = null;
        state.busy.video = false;
        $("video-input").value = "";
        updateRun();
      }
    }
  }

  // ------------------------------------------------------------------ styles
  function styleTile(key, name, thumb) {
    const tile = el("button", { type: "button", class: "tile", role: "option", "aria-selected": "false",
                               "data-key": key, title: name });
    tile.append(el("img", { src: key.startsWith("upload:") ? withSession(thumb) : thumb, alt: name, loading: "lazy" }),
                el("span", { class: "tile-name", text: name }));
    tile.addEventListener("click", () => {
      newChoice("style");
      $("style-drop").classList.remove("busy");
      state.busy.style = false;
      selectStyle(key);
    });
    return tile;
  }

  function selectStyle(key) {
    state.styleKey = key;
    const uploaded = state.styles.find((st) => st.key === key);  // its warnings show while it is the one picked
    showWarnings("style-warning", uploaded && uploaded.warnings);
    for (const t of document.querySelectorAll(".tile[data-key]")) t.setAttribute("aria-selected", String(t.dataset.key === key));
    updateRun();
    schedulePreview(0);
  }

  async function setStyle(file) {
    if (!file) return;
    if (!IMAGE_EXT.test(file.name) && !(file.type || "").startsWith("image/")) {
      showError(`${file.name} is not an image: a style is a photo (.jpg, .png, .webp, .bmp or .tif).`);
      return;
    }
    const drop = $("style-drop");
    const n = newChoice("style");
    const ctrl = state.uploading.style = new AbortController();
    drop.classList.add("busy");
    state.busy.style = true;
    updateRun();
    try {
      const st = await upload("/api/styles", file, null, ctrl.signal);
      if (n !== state.choice.style) return;
      clearError();
      state.styles.push(st);
      drop.after(styleTile(st.key, st.name, st.thumb));
      selectStyle(st.key);
    } catch (e) {
      if (n !== state.choice.style) return;
      showError(e.message);
    } finally {
      if (n === state.choice.style) {
        state.uploading.style = null;
        drop.classList.remove("busy");
        state.busy.style = false;
        $("style-input").value = "";
        updateRun();
      }
    }
  }

  // ------------------------------------------------------------------ preview
  function lookRequest() {
    return { video: state.video.id, style: state.styleKey, model: $("model").value,
             strength: Number($("strength").value) / 100 };
  }

  function schedulePreview(delay = 350) {
    clearTimeout(state.previewTimer);
    if (!state.video || !state.styleKey) return;
    state.previewTimer = setTimeout(requestPreview, delay);
  }

  async function requestPreview() {
    if (!state.video || !state.styleKey) return;
    if (state.previewAbort) state.previewAbort.abort();
    const ctrl = new AbortController();
    state.previewAbort = ctrl;
    // Numbered from the clock, not from 0: a reloaded tab keeps its session, and the server refuses
    // (409) a preview numbered below the last one that session asked for.
    const seq = state.previewSeq = Math.max(state.previewSeq + 1, Date.now());
    const req = { ...lookRequest(), seq };
    const box = $("preview");
    box.dataset.state = "loading";
    const n = state.video.frames_preview.length;
    $("preview-busy-text").textContent = `Stylizing ${n} key frame${n === 1 ? "" : "s"}…`;
    $("preview-status").textContent = `${req.model} · ${pct(req.strength)}`;
    const t0 = performance.now();
    try {
      const p = await api("/api/preview", { method: "POST", json: req, signal: ctrl.signal });
      // Load every image before showing any, so the slider never shows half a look.
      await Promise.all(p.frames.map((f) => preload(withSession(f.after))));
      if (seq !== state.previewSeq) return;
      state.preview = p;
      renderFilmstrip();
      showFrameImages(true);
      box.dataset.state = "ready";
      box.dataset.key = `${p.model}|${Math.round(p.strength * 100)}|${p.style}`;
      const wall = (performance.now() - t0) / 1000;
      $("preview-status").textContent =
        `${p.model} · ${pct(p.strength)} · ${p.style_name} · ${n} key frames in ${fmtSeconds(p.seconds || wall)}`;
    } catch (e) {
      if (e.name === "AbortError" || seq !== state.previewSeq) return;
      box.dataset.state = state.preview ? "ready" : "error";
      $("preview-status").textContent = "Preview failed";
      showError(e.message);
    }
  }

  function preload(src) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve();
      img.onerror = () => reject(new Error("A preview image could not be loaded."));
      img.src = src;
    });
  }

  function showFrameImages(withAfter) {
    const box = $("preview");
    const frames = state.video ? state.video.frames_preview : [];
    const f = frames[state.frame];
    if (!f) { box.classList.remove("has-images"); return; }
    $("preview-before").src = withSession(f.url);
    const p = state.preview && withAfter !== false ? state.preview : null;
    box.classList.add("has-images");
    if (p && p.video === state.video.id) {
      $("preview-after").src = withSession(p.frames[state.frame].after);
      box.classList.remove("original-only");
    } else {  // no look yet: the original frame alone
      $("preview-after").src = withSession(f.url);
      box.classList.add("original-only");
      if (!state.styleKey) box.dataset.state = "waiting";
    }
    for (const b of document.querySelectorAll(".frame")) b.setAttribute("aria-selected", String(Number(b.dataset.k) === state.frame));
  }

  function renderFilmstrip() {
    const strip = $("filmstrip");
    strip.replaceChildren();
    if (!state.video) return;
    const frames = state.video.frames_preview;
    strip.style.setProperty("--n", frames.length);
    const p = state.preview && state.preview.video === state.video.id ? state.preview : null;
    frames.forEach((f, k) => {
      const b = el("button", { type: "button", class: "frame", role: "tab", "data-k": k,
                               "aria-selected": String(k === state.frame), title: `Frame ${f.index} at ${fmtTime(f.time)}` });
      b.append(el("img", { src: withSession(p ? p.frames[k].after : f.url), alt: `Frame ${f.index}` }),
               el("span", { text: fmtTime(f.time) }));
      b.addEventListener("click", () => { state.frame = k; showFrameImages(true); });
      strip.append(b);
    });
  }

  function setDivider(v) {
    $("preview").style.setProperty("--pos", `${v}%`);
  }
  $("compare-range").addEventListener("input", (e) => setDivider(e.target.value));

  // ------------------------------------------------------------------ look controls
  function strengthChanged() {
    const s = $("strength");
    $("strength-value").textContent = `${s.value}%`;
    s.style.setProperty("--fill", `${s.value}%`);
  }
  $("strength").addEventListener("input", () => { strengthChanged(); schedulePreview(); });
  $("model").addEventListener("change", () => { describeModel(); schedulePreview(0); });

  function updateRun() {
    const ready = !!(state.video && state.styleKey) && !state.busy.video && !state.busy.style;
    $("run").disabled = !ready;
    $("run-hint").textContent = ready
      ? `${state.video.name} · ${state.video.frames} frames, queued behind any running render.`
      : (state.busy.video || state.busy.style) ? "Uploading…" : "Add a video and a style photo first.";
  }

  $("run").addEventListener("click", async () => {
    if (!state.video || !state.styleKey) return;
    $("run").disabled = true;
    try {
      const job = await api("/api/jobs", { method: "POST", json: lookRequest() });
      upsertJob(job);
      clearError();
      if (window.matchMedia("(max-width: 1180px)").matches) {
        const card = document.querySelector(`.job[data-job-id="${job.id}"]`);
        if (card) card.scrollIntoView({ behavior: "smooth", block: "nearest" });
      }
    } catch (e) {
      showError(e.message);
    } finally {
      updateRun();
    }
  });

  // ------------------------------------------------------------------ jobs
  function styleThumb(job) {
    if (job.style_key.startsWith("gallery:")) {
      const g = state.info.gallery.find((x) => x.key === job.style_key);
      return g ? g.thumb : null;
    }
    return withSession(`/api/styles/${job.style_key.slice(7)}/thumb.jpg`);
  }

  const STATE_LABEL = { queued: "Queued", running: "Rendering", done: "Done", failed: "Failed", cancelled: "Cancelled",
                        lost: "Lost" };

  function upsertJob(job) {
    const known = state.jobs.get(job.id);
    if (known && job.rev < known.rev) return;  // an older view that arrived late (a response after an event)
    state.jobs.set(job.id, job);
    if (!known || known.state !== job.state) {  // said to screen readers; progress is not, it would never stop
      $("jobs-live").textContent = `${job.video_name}: ${STATE_LABEL[job.state] || job.state}`;
    }
    const list = $("jobs");
    let card = list.querySelector(`.job[data-job-id="${job.id}"]`);
    if (!card) {
      card = buildJobCard(job);
      list.prepend(card);
    }
    updateJobCard(card, job);
    $("jobs-empty").hidden = state.jobs.size > 0;
    const active = [...state.jobs.values()].filter((j) => j.state === "queued" || j.state === "running").length;
    $("jobs-status").textContent = active ? `${active} in the queue` : (state.jobs.size ? `${state.jobs.size} this session` : "");
  }

  function buildJobCard(job) {
    const card = el("li", { class: "job", "data-job-id": job.id });
    const thumb = styleThumb(job);
    const head = el("div", { class: "job-head" },
      el("img", { class: "job-thumb", src: thumb, alt: "" }),
      el("div", { class: "job-title" }, el("b", { text: job.video_name }),
         el("small", { text: `${job.style_name} · ${job.model} · ${pct(job.strength)}` })),
      el("span", { class: "badge" }));
    const bar = el("div", { class: "bar", role: "progressbar", "data-testid": "progress", "aria-valuemin": "0",
                            "aria-valuemax": "100", "aria-valuenow": "0", "aria-label": "Render progress" }, el("span"));
    const cancel = el("button", { type: "button", class: "btn small ghost danger", "data-testid": "cancel" },
                      icon(ICON_X), document.createTextNode("Cancel"));
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { upsertJob(await api(`/api/jobs/${job.id}/cancel`, { method: "POST" })); }
      catch (e) { showError(e.message); cancel.disabled = false; }
    });
    const meta = el("div", { class: "job-meta" }, el("span", { class: "job-frames" }), cancel);
    card.append(head, bar, meta, el("p", { class: "job-error", hidden: true }),
                el("p", { class: "job-warning", "data-testid": "job-warning", hidden: true }),
                el("div", { class: "job-result" }));
    return card;
  }

  function updateJobCard(card, job) {
    card.dataset.state = job.state;
    card.querySelector(".badge").textContent = job.expired ? "Removed" : STATE_LABEL[job.state] || job.state;
    const progress = job.state === "done" ? 1 : job.progress;
    const bar = card.querySelector(".bar");
    bar.setAttribute("aria-valuenow", String(Math.round(progress * 100)));
    bar.querySelector("span").style.width = pct(progress);
    const frames = card.querySelector(".job-frames");
    const active = job.state === "queued" || job.state === "running";
    if (job.state === "queued") frames.textContent = "Waiting for the render before it…";
    else if (job.state === "running") {
      const eta = job.progress > 0.05 ? job.elapsed * (1 - job.progress) / job.progress : null;
      frames.textContent = `${pct(progress)} · ${job.frames_done} / ${job.frames_total || "?"} frames` +
        (eta != null ? ` · ${fmtSeconds(eta)} left` : "");
    } else if (job.state === "done") {
      const s = job.summary || {};
      frames.textContent = `${job.frames_total} frames · ${s.keys ?? "?"} key frames · ${fmtSeconds(job.elapsed)}`;
    } else if (job.state === "cancelled") frames.textContent = "Cancelled; nothing was kept.";
    else frames.textContent = "Stopped.";
    card.querySelector("[data-testid=cancel]").hidden = !active;
    const err = card.querySelector(".job-error");
    err.hidden = !job.error && !job.expired;
    err.textContent = job.expired ? "Its files were removed to keep the work folder small; render it again." : (job.error || "");
    const warning = card.querySelector(".job-warning");
    warning.textContent = (job.warnings || []).join(" ");
    warning.hidden = !warning.textContent;
    const result = card.querySelector(".job-result");
    if (job.state === "done" && !job.expired && job.video) {
      if (!result.dataset.filled) {
        result.dataset.filled = "1";
        const video = el("video", { controls: true, playsinline: true, preload: "auto", loop: true,
                                    src: withSession(job.video), "aria-label": "Rendered video" });
        const actions = el("div", { class: "job-actions" });
        actions.append(el("a", { class: "btn small", "data-testid": "download-video",
                                 href: withSession(job.video + "?download=1"), download: "" },
                          icon(ICON_DOWNLOAD), document.createTextNode("MP4")));
        if (job.lut) {
          actions.append(el("a", { class: "btn small", "data-testid": "download-lut", href: withSession(job.lut),
                                   download: "", title: "3D LUT for Resolve, Premiere, FFmpeg" },
                            icon(ICON_DOWNLOAD), document.createTextNode("LUT .cube")));
        } else {
          actions.append(el("button", { type: "button", class: "btn small", "data-testid": "download-lut", disabled: true,
                                        title: `No LUT: ${job.lut_reason || "this model has none"}` },
                            icon(ICON_DOWNLOAD), document.createTextNode("LUT .cube")));
        }
        if (job.report) {
          actions.append(el("a", { class: "btn small", "data-testid": "download-report", href: withSession(job.report),
                                   download: "" }, icon(ICON_DOWNLOAD), document.createTextNode("Report")));
        }
        result.append(video, actions);
        if (!job.lut) {
          const m = (state.info.models || []).find((x) => x.name === job.model);
          result.append(el("p", { class: "job-note", title: job.lut_reason || "",
                                  text: m && m.spatial ? `No LUT: ${job.model} varies its look over the picture, which a LUT cannot hold.`
                                                       : `No LUT: ${job.lut_reason || "this model has no LUT export"}.` }));
        }
      }
    } else if (result.dataset.filled) {
      result.replaceChildren();
      delete result.dataset.filled;
    }
  }

  function listenForJobs() {
    const source = new EventSource(withSession("/api/events"));
    source.addEventListener("snapshot", (ev) => {
      for (const job of JSON.parse(ev.data).jobs) upsertJob(job);
    });
    source.addEventListener("job", (ev) => upsertJob(JSON.parse(ev.data)));
    source.addEventListener("open", () => {
      if (state.unreachable) { state.unreachable = false; clearError(); }
    });
    // The browser reconnects by itself (the stream says retry: 1500) and the snapshot brings it up to
    // date, except after a restart: the session is unknown (401) and the browser gives up without a
    // word, leaving a card at "Rendering 5%" for ever. So every break is checked.
    source.addEventListener("error", async () => {
      if (state.sessionLost) return;
      try {
        await api("/api/jobs");
      } catch (e) {
        if (e.status === 401) {
          source.close();
          sessionLost();
        } else if (!e.status) {
          state.unreachable = true;
          showError("The studio server cannot be reached: it has stopped, or the connection broke. " +
                    "Renders that were waiting or running are lost if it stopped.");
        }
        return;
      }
      // The session is fine: a closed stream (a refusal, not a break) is opened again.
      if (source.readyState === EventSource.CLOSED) setTimeout(listenForJobs, 1500);
    });
  }

  function sessionLost() {
    state.sessionLost = true;
    for (const job of state.jobs.values()) {
      if (job.state === "queued" || job.state === "running") {
        upsertJob({ ...job, state: "lost", rev: job.rev + 1,
                    error: "Lost: the studio stopped or restarted before this render finished." });
      }
    }
    showError("The studio restarted or stopped: this page's session has ended, and renders that were " +
              "waiting or running were lost. Reload the page to start again.");
  }

  // ------------------------------------------------------------------ drag and drop
  function bindDrop(zone, handler) {
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      zone.classList.remove("over");
      $("drop-overlay").hidden = true;
      const file = e.dataTransfer.files[0];
      if (file) handler(file);
    });
  }
  bindDrop($("video-drop"), setVideo);
  bindDrop($("style-drop"), setStyle);
  let dragDepth = 0;
  window.addEventListener("dragenter", (e) => {
    if ([...(e.dataTransfer.types || [])].includes("Files")) { dragDepth++; $("drop-overlay").hidden = false; }
  });
  window.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; $("drop-overlay").hidden = true; } });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    dragDepth = 0;
    $("drop-overlay").hidden = true;
    const file = e.dataTransfer.files[0];
    if (!file) return;
    if (VIDEO_EXT.test(file.name) || (file.type || "").startsWith("video/")) setVideo(file);
    else if (IMAGE_EXT.test(file.name) || (file.type || "").startsWith("image/")) setStyle(file);
    else showError(`${file.name} is neither a video nor a photo.`);
  });

  $("video-input").addEventListener("change", (e) => setVideo(e.target.files[0]));
  $("style-input").addEventListener("change", (e) => setStyle(e.target.files[0]));

  // ------------------------------------------------------------------ start
  async function main() {
    strengthChanged();
    try {
      await startSession();
      await loadInfo();
      listenForJobs();
      document.body.dataset.ready = "1";
    } catch (e) {
      showError(e.message);
    }
  }
  main();
})();
