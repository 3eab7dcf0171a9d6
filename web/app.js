// The ragdiff page: no build step, no framework. It talks only to this server's /v1 API.
const $ = (sel) => document.querySelector(sel);
const state = {
  info: null,
  /** id → { ref, choice: 'auto' | 'pinned' | 'dropped', uploaded } in display order */
  refs: new Map(),
  busy: false,
  /** GET /v1/sources: { sources: ['store', 'openverse', …], urls } */
  sources: null,
};

/** Only http(s) links from a source's answer become links. */
const safeHref = (u) => (typeof u === 'string' && /^https?:\/\//i.test(u) ? u : undefined);

/** The sources picker: the store and each online source the operator enabled; a URL field when URLs are allowed. */
function renderSources() {
  const s = state.sources;
  if (!s || (s.sources.length <= 1 && !s.urls)) return;
  $('#sources-row').hidden = false;
  $('#url-row').hidden = !s.urls;
  $('#sources').replaceChildren(...s.sources.map((name) => el('label', { class: 'check' },
    el('input', { type: 'checkbox', name: 'source', value: name, ...(name === 'store' ? { checked: '' } : {}) }), ` ${name} `)));
}

/** The live part of a generation body: retrieval.from when an online source is ticked, a pasted URL as a reference. */
function liveRetrieval() {
  if (!state.sources) return {};
  const from = [...document.querySelectorAll('#sources input[name="source"]:checked')].map((i) => i.value);
  const url = $('#ref-url')?.value.trim();
  return {
    ...(from.some((f) => f !== 'store') || !from.includes('store') ? { from: from.length ? from : ['store'] } : {}),
    ...(url && state.sources.urls ? { urls: [{ url }] } : {}),
  };
}

function headers(extra = {}) {
  const key = localStorage.getItem('ragdiff-key');
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: headers(init.headers) });
  const type = res.headers.get('content-type') || '';
  const body = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) {
    const e = new Error(body?.error?.message || `${res.status} ${res.statusText}`);
    e.status = res.status;
    e.code = body?.error?.code;
    e.retryAfter = res.headers.get('retry-after');
    throw e;
  }
  return body;
}

/** Images of the API may need the bearer key: fetch them and show blob URLs. */
async function loadImage(img, url) {
  try {
    const res = await fetch(url, { headers: headers() });
    if (!res.ok) throw new Error(String(res.status));
    img.src = URL.createObjectURL(await res.blob());
  } catch {
    img.alt = `${img.alt} (unavailable)`;
  }
}

function setStatus(text, error = false) {
  const s = $('#status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const mode = () => $('#mode').value;
/** References a generation uses: one per neighbour slot in the token modes, one in reference-init. */
const kOf = () => (mode() === 'reference-init' ? 1 : state.info.retrieval.slots || 1);

/** Which references the next generation will use: pinned first, then the best remaining ones the screen allows. */
function planned() {
  const all = [...state.refs.values()];
  const pinned = all.filter((r) => r.choice === 'pinned');
  const auto = all.filter((r) => r.choice === 'auto' && r.ref.screen?.allow !== false).sort((a, b) => (b.ref.score ?? 0) - (a.ref.score ?? 0));
  return new Set([...pinned, ...auto].slice(0, kOf()).map((r) => r.ref.id));
}

function renderRefs() {
  const list = $('#refs');
  list.replaceChildren();
  const used = planned();
  const refused = [];
  for (const r of state.refs.values()) {
    const { ref } = r;
    const isRefused = ref.screen && !ref.screen.allow;
    if (isRefused) refused.push(`${ref.name || ref.id}: ${ref.screen.reason}`);
    const cls = ['ref', r.choice, used.has(ref.id) ? 'used' : '', isRefused ? 'refused' : ''].filter(Boolean).join(' ');
    const badge = isRefused ? 'refused by policy' : r.choice === 'dropped' ? 'dropped' : r.choice === 'pinned' ? (r.uploaded ? 'uploaded · pinned' : 'pinned') : used.has(ref.id) ? 'will be used' : 'not used';
    const img = el('img', { alt: ref.name || ref.id, width: 64, height: 64 });
    loadImage(img, ref.thumbnail_url);
    const drop = el('button', { type: 'button', class: 'drop', 'aria-pressed': String(r.choice === 'dropped'), onclick: () => { r.choice = r.choice === 'dropped' ? 'auto' : 'dropped'; renderRefs(); } }, r.choice === 'dropped' ? 'Restore' : 'Drop');
    const pin = el('button', { type: 'button', class: 'pin', 'aria-pressed': String(r.choice === 'pinned'), onclick: () => { r.choice = r.choice === 'pinned' ? 'auto' : 'pinned'; renderRefs(); } }, r.choice === 'pinned' ? 'Unpin' : 'Pin');
    list.append(el('li', { class: cls, 'data-id': ref.id, 'data-choice': r.choice },
      img,
      el('span', { class: 'badge' }, badge),
      el('span', { class: 'name' }, ref.name || '(unnamed)'),
      el('span', { class: 'meta' }, `${ref.source || 'unknown source'} · ${ref.licence || 'licence not given'}${ref.score !== undefined ? ` · score ${ref.score.toFixed(3)}` : ''}`),
      el('span', { class: 'buttons' }, drop, pin)));
  }
  const s = $('#safety');
  s.hidden = refused.length === 0;
  s.textContent = refused.length ? `Refused by the safety policy${state.info.policy ? ` (${state.info.policy.slice(0, 12)})` : ''}: ${refused.join('; ')}` : '';
}

async function search() {
  const q = $('#prompt').value.trim();
  if (!q || !state.info.store) return;
  try {
    const res = await api(`/v1/references?q=${encodeURIComponent(q)}&k=8`);
    // Keep the user's pins, drops and uploads; replace the rest with the new results.
    for (const [id, r] of state.refs) if (r.choice === 'auto') state.refs.delete(id);
    for (const ref of res.data) {
      const had = state.refs.get(ref.id);
      if (had) had.ref = { ...had.ref, score: ref.score, screen: ref.screen };
      else state.refs.set(ref.id, { ref, choice: 'auto', uploaded: false });
    }
    renderRefs();
    setStatus(`${res.data.length} references found among ${res.total}.`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

async function upload(file) {
  const form = new FormData();
  form.append('name', file.name.replace(/\.[a-z0-9]+$/i, ''));
  form.append('source', 'upload');
  form.append('file', file);
  try {
    const res = await api('/v1/references', { method: 'POST', body: form });
    const prev = state.refs.get(res.reference.id);
    state.refs.delete(res.reference.id);
    // Uploads go first and are pinned: the user added them to be used.
    state.refs = new Map([[res.reference.id, { ref: { ...res.reference, score: prev?.ref.score }, choice: 'pinned', uploaded: true }], ...state.refs]);
    renderRefs();
    setStatus(res.status === 'added' ? `Uploaded ${res.reference.name || res.reference.id}.` : `That image is already in the store (${res.status}); pinned it.`);
  } catch (e) {
    setStatus(`Upload refused: ${e.message}`, true);
  }
}

/** Reads a server-sent event stream with fetch (EventSource cannot send the API key). */
async function follow(url, onEvent, signal) {
  const res = await fetch(url, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) throw new Error(`events: ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

const STAGE_WEIGHT = { queued: 0, 'encode-text': 0.05, 'encode-image': 0.05, denoise: 0.9, decode: 0.03, png: 0.02 };

/** One streamed generation into one figure. Resolves with the API's result. */
async function run(figure, body, signal) {
  figure.hidden = false;
  const bar = figure.querySelector('progress');
  const img = figure.querySelector('img.out');
  bar.value = 0;
  img.removeAttribute('src');
  const job = await api('/v1/images/generations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }), signal });
  let result;
  await follow(job.events_url, (event, data) => {
    if (event === 'progress') {
      const before = { queued: 0, 'encode-text': 0, 'encode-image': 0.05, denoise: 0.1, decode: 0.95, png: 0.98 }[data.stage] ?? 0;
      bar.value = Math.min(1, before + (STAGE_WEIGHT[data.stage] ?? 0) * (data.total ? data.step / data.total : 0));
      figure.dataset.stage = data.stage;
    } else if (event === 'result') {
      result = data;
    } else if (event === 'error') {
      const e = new Error(data.error?.message || 'generation failed');
      e.code = data.error?.code;
      throw e;
    }
  }, signal);
  if (!result) throw new Error('the event stream ended without a result');
  bar.value = 1;
  if (result.data.length === 0) {
    const b = result.safety?.blocked?.[0];
    throw new Error(`The image was blocked by the safety policy${b ? ` (rule ${b.rule})` : ''}.`);
  }
  img.src = `data:image/png;base64,${result.data[0].b64_json}`;
  figure.dataset.seed = String(result.data[0].seed);
  return result;
}

function showUsed(result) {
  const ol = $('#with .used-list');
  ol.replaceChildren();
  for (const ref of result.references) {
    const thumb = el('img', { alt: '' });
    if (ref.thumbnail_url) loadImage(thumb, ref.thumbnail_url);
    ol.append(el('li', { 'data-id': ref.id ?? `upload:${ref.sha256.slice(0, 16)}` },
      thumb,
      el('b', {}, ref.name || ref.id || 'upload'),
      ` — ${ref.attribution || ref.source || 'no attribution given'}${ref.licence ? ` (${ref.licence})` : ''}, influence ${(ref.influence * 100).toFixed(0)} %${ref.pinned ? ', pinned' : ''}`,
      ...(ref.url ? [el('span', { class: 'meta' }, ` · ${ref.source}${ref.creator ? ` · by ${ref.creator}` : ''} · `),
        el('a', { href: safeHref(ref.landingUrl ?? ref.url), rel: 'noopener nofollow', target: '_blank' }, 'source page'),
        ...(safeHref(ref.licenceUrl) ? [' · ', el('a', { href: safeHref(ref.licenceUrl), rel: 'noopener nofollow license', target: '_blank' }, ref.licence)] : [])] : [])));
  }
  if (result.references.length === 0) ol.append(el('li', {}, result.retrieval?.skipped || 'no references were used'));
  const screened = (result.safety?.screened ?? []).map((x) => `${x.ref}: ${x.reason}`);
  const blocked = (result.safety?.blocked ?? []).map((b) => `image ${b.index + 1} (seed ${b.seed}) by rule ${b.rule}`);
  if (screened.length || blocked.length) {
    const s = $('#safety');
    s.hidden = false;
    s.textContent = `Refused by the safety policy during generation: ${[...screened, ...blocked].join('; ')}`;
  }
}

let current = null;
async function generate() {
  const prompt = $('#prompt').value.trim();
  if (!prompt) { setStatus('Type a prompt first.', true); return; }
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const seedField = $('#seed');
  if (!seedField.value) seedField.value = String(Math.floor(Math.random() * 2 ** 31));
  const base = { prompt, n: 1, size: state.info.size, response_format: 'b64_json', seed: Number(seedField.value), steps: Number($('#steps').value) || undefined };
  const refs = [...state.refs.values()];
  const pinned = refs.filter((r) => r.choice === 'pinned').map((r) => r.ref.id);
  if (pinned.length > kOf()) { setStatus(`Pin at most ${kOf()} references in mode ${mode()}.`, true); return; }
  const { urls = [], ...live } = liveRetrieval();
  const retrieval = state.info.store
    ? { mode: mode(), references: [...pinned, ...urls], exclude: refs.filter((r) => r.choice === 'dropped').map((r) => r.ref.id), ...live }
    : false;
  $('#generate').disabled = true;
  setStatus('Generating…');
  try {
    const jobs = [run($('#with'), { ...base, retrieval }, controller.signal).then((r) => { showUsed(r); return r; })];
    if ($('#compare').checked) jobs.push(run($('#without'), { ...base, retrieval: false }, controller.signal));
    else $('#without').hidden = true;
    const [r] = await Promise.all(jobs);
    setStatus(`Done: seed ${r.data[0].seed}, ${r.usage.steps} steps${r.retrieval ? `, ${r.references.length} references (${r.retrieval.mode})` : ''}.`);
  } catch (e) {
    if (e.name !== 'AbortError') setStatus(e.code === 'BUSY' ? 'The server is busy; try again in a moment.' : e.message, true);
  } finally {
    $('#generate').disabled = false;
  }
}

function showKeyRow() {
  $('#key-row').hidden = false;
  if (!localStorage.getItem('ragdiff-key')) $('#settings').open = true;
  $('#api-key').value = localStorage.getItem('ragdiff-key') || '';
}

/** /v1/info needs the key when the server has keys: ask for it, and retry as it is typed. */
async function loadInfo() {
  for (;;) {
    try {
      return await api('/v1/info');
    } catch (e) {
      if (e.status !== 401) throw e;
      showKeyRow();
      setStatus('This server needs an API key: enter it under Settings.', true);
      await new Promise((resolve) => $('#api-key').addEventListener('input', resolve, { once: true }));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

async function start() {
  $('#api-key').addEventListener('input', (e) => localStorage.setItem('ragdiff-key', e.target.value.trim()));
  state.info = await loadInfo();
  setStatus('');
  $('#model').textContent = `Model ${state.info.model}, ${state.info.size}${state.info.store ? `, ${state.info.store.size} references` : ', no reference store'}${state.info.policy ? `, safety policy ${state.info.policy.slice(0, 12)}` : ''}.`;
  $('#steps').value = String(Math.min(state.info.defaults.steps, 12));
  for (const m of state.info.modes) $('#mode').append(el('option', { value: m }, m));
  $('#mode').addEventListener('change', renderRefs);
  if (!state.info.store) { $('#refs-section').hidden = true; $('#compare').checked = false; }
  state.sources = await api('/v1/sources').catch(() => null);
  renderSources();
  if (state.info.auth) showKeyRow();
  let timer;
  $('#prompt').addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 400); });
  $('#search').addEventListener('click', search);
  $('#prompt-form').addEventListener('submit', (e) => { e.preventDefault(); generate(); });
  $('#generate').addEventListener('click', generate);
  $('#upload').addEventListener('change', (e) => { const f = e.target.files?.[0]; if (f) upload(f); e.target.value = ''; });
  document.body.dataset.ready = 'true';
}

start().catch((e) => setStatus(`Could not reach the server: ${e.message}`, true));
