/**
 * `ragdiff generate "<prompt>" -o file.png` and `ragdiff demo`.
 */
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from 'commander';
import sharp, { type OverlayOptions } from 'sharp';
import type { PipelineOptions } from '../pipeline/pipeline.js';
import { checkPromptLength, SAMPLERS, type ProgressEvent, type SamplerChoice } from '../pipeline/params.js';
import { ensureOutputDir, prepareOutputFile, writeOutputFile } from '../io/output-path.js';
import { withPngText } from '../image/png-text.js';
import { RagPipeline, TOKEN_MODES, type RagResult, type ReferenceUse, type RetrievalMode, type RetrievalOptions } from '../rag/index.js';
import { bundleRetrieval } from '../rag/bundle-retrieval.js';
import { clipEncoderId } from '../models/encoder-id.js';
import { checkInputFile, readInputFile } from './input-file.js';
import { MAX_POLICY_BYTES } from '../safety/load.js';
import { KnowledgeBase } from '../trajectory/kb-file.js';
import { intOption, numberOption, runAction } from './options.js';
import { liveRegistry } from './live-sources.js';
import { ImageStore } from '../store/store.js';
import { addRetrievalOptions, openRetrievalStore, referenceJson, referencesText, readUploads, retrievalRequest, usageText, wantsRetrieval, type RetrievalCliOptions } from './retrieval.js';
import { policyForCli } from '../safety/cli.js';
import { RagdiffError } from '../errors.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The embedded default bundle. */
export const DEFAULT_MODEL_DIR = join(packageRoot, 'models', 'tiny-emoji');

/**
 * Emoji names tiny-emoji draws recognisably (picked from a 45-name sweep; the bench
 * records the bundle-CLIP recognisability of both sets).
 */
export const DEMO_PROMPTS = ['grinning face', 'crying face', 'red heart', 'cat face', 'car', 'globe'];

function sampler(v: string): SamplerChoice {
  if (!(SAMPLERS as readonly string[]).includes(v)) throw new InvalidArgumentError(`sampler must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as SamplerChoice;
}

/** A one-line progress bar on a TTY (stderr); silent otherwise. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr, label = ''): { update(e: ProgressEvent): void; done(): void } {
  if (!stream.isTTY) return { update() {}, done() {} };
  let last = '';
  return {
    update(e) {
      const width = 30;
      const frac = e.total > 0 ? e.step / e.total : 0;
      const filled = Math.round(frac * width);
      const line = `${label}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(e.step).padStart(String(e.total).length)}/${e.total} ${e.stage}`;
      if (line !== last) stream.write(`\r${line}\x1b[K`);
      last = line;
    },
    done() {
      if (last) stream.write('\r\x1b[K');
      last = '';
    },
  };
}

function pipelineOptions(o: { providers?: string; threads?: number }): PipelineOptions {
  return {
    executionProviders: o.providers ? o.providers.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
    threads: o.threads,
  };
}

interface GenerateCliOptions extends RetrievalCliOptions {
  output: string;
  model: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  sampler?: SamplerChoice;
  negative?: string;
  negativePrompt?: string;
  prompt2?: string;
  negativePrompt2?: string;
  truncatePrompt?: boolean;
  batch?: number;
  initImage?: string;
  strength?: number;
  karras?: boolean;
  providers?: string;
  threads?: number;
  json?: boolean;
  kb?: string;
  keyStep?: number;
  valueStep?: number;
  kbK?: number;
  maxDistance?: number;
  style?: string;
  policy?: string;
}

/** `file.png` for one image, `file-1.png`, `file-2.png`, … for a batch. */
function outputPaths(output: string, n: number): string[] {
  const out = resolve(output);
  const ext = extname(out);
  const base = out.slice(0, out.length - ext.length);
  return Array.from({ length: n }, (_, i) => (n === 1 ? out : `${base}-${i + 1}${ext || '.png'}`));
}

/** A retrieve-only answer, as a PNG that says what it is (its ragdiff chunk names the reference). */
async function retrievedPng(r: RagResult, prompt: string): Promise<Buffer> {
  const answer = r.retrieved!;
  const png = await sharp(answer.png).png().toBuffer();
  const record = {
    prompt,
    retrieved: true,
    provenance: { retrieval: { mode: r.stats.retrieval?.mode, k: r.stats.retrieval?.k, retrieveOnly: true }, references: [answer.reference] },
  };
  return withPngText(png, { ragdiff: JSON.stringify(record) });
}

async function generateCommand(prompt: string, o: GenerateCliOptions): Promise<void> {
  // Inputs and outputs are checked before any model loads: a bad path fails in milliseconds.
  checkPromptLength('prompt', prompt);
  if (o.negativePrompt !== undefined) {
    if (o.negative !== undefined && o.negative !== o.negativePrompt) throw new RagdiffError('INVALID_ARGUMENT', 'give one negative prompt: --negative or --negative-prompt, not both');
    o.negative = o.negativePrompt;
  }
  if (o.negative !== undefined) checkPromptLength('negative prompt', o.negative);
  if (o.prompt2 !== undefined) checkPromptLength('--prompt-2', o.prompt2);
  if (o.negativePrompt2 !== undefined) checkPromptLength('--negative-prompt-2', o.negativePrompt2);
  const retrieval = wantsRetrieval(o);
  const initImage = o.initImage !== undefined ? readInputFile(o.initImage, '--init-image') : undefined;
  const uploads = retrieval ? readUploads(o) : [];
  // Files the libraries open themselves, checked now: a FIFO, a directory or a missing file fails before any model loads.
  if (o.policy !== undefined) checkInputFile(o.policy, '--policy', MAX_POLICY_BYTES);
  if (o.kb !== undefined) KnowledgeBase.open(o.kb).close();
  const sources = retrieval ? liveRegistry(o) : undefined; // opens nothing; checks --sources-config at once
  for (const p of outputPaths(o.output, typeof o.batch === 'number' && o.batch > 0 ? o.batch : 1)) prepareOutputFile(p);
  // A policy screens the prompt, every reference and every output (its guard's hooks go into the RagPipeline).
  const safety = o.policy ? await policyForCli(o.policy, o.model) : undefined;
  // The bundle and the store load side by side; if either fails, the other is closed.
  const [loaded, openedStore] = await Promise.allSettled([
    RagPipeline.load(o.model, { ...pipelineOptions(o), ...(safety ? safety.guard.ragOptions() : {}), ...(sources ? { sources } : {}) }),
    retrieval ? openRetrievalStore(o, o.model) : Promise.resolve(undefined),
  ]);
  if (loaded.status === 'rejected' || openedStore.status === 'rejected') {
    if (loaded.status === 'fulfilled') await loaded.value.close();
    if (openedStore.status === 'fulfilled') await openedStore.value?.close();
    await safety?.close();
    throw loaded.status === 'rejected' ? loaded.reason : (openedStore as PromiseRejectedResult).reason;
  }
  const rag = loaded.value;
  const opened = openedStore.value;
  const bar = o.json ? { update() {}, done() {} } : progressBar();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  let cacheStore: ImageStore | undefined;
  try {
    if (opened && o.cacheInto !== undefined) {
      cacheStore = o.store !== undefined && resolve(o.cacheInto) === resolve(o.store) ? opened.store : await ImageStore.open(resolve(o.cacheInto), { encoder: opened.encoder });
    }
    const r = await rag.generate({
      prompt,
      negativePrompt: o.negative,
      ...(o.prompt2 !== undefined ? { prompt2: o.prompt2 } : {}),
      ...(o.negativePrompt2 !== undefined ? { negativePrompt2: o.negativePrompt2 } : {}),
      ...(o.truncatePrompt ? { truncatePrompt: true } : {}),
      seed: o.seed,
      steps: o.steps,
      guidanceScale: o.guidance,
      sampler: o.sampler,
      batch: o.batch,
      karras: o.karras,
      initImage,
      // With retrieval and no --init-image, --strength is the reference-init strength (in the retrieval request).
      strength: opened && initImage === undefined ? undefined : o.strength,
      ...(opened ? { retrieval: { ...retrievalRequest(o, opened.store, uploads, sources), ...(cacheStore ? { cache: cacheStore } : {}) } } : {}),
      onProgress: (e) => bar.update(e),
      signal: controller.signal,
      ...(o.kb ? { trajectory: { kb: o.kb, keyStep: o.keyStep, valueStep: o.valueStep, k: o.kbK, maxDistance: o.maxDistance, ...(o.style !== undefined ? { prompt: o.style } : {}) } } : {}),
    });
    bar.done();
    for (const line of safety?.describeBlocked(r.blocked) ?? []) console.error(line);
    if (safety && r.images.length === 0 && !r.retrieved) process.exitCode = 1;
    const paths = outputPaths(o.output, r.images.length).map((p, i) => writeOutputFile(p, r.images[i]!.png));
    let retrievedFile: string | undefined;
    if (r.retrieved) {
      const out = resolve(o.output);
      retrievedFile = `${out.slice(0, out.length - extname(out).length)}-retrieved.png`;
      writeOutputFile(retrievedFile, await retrievedPng(r, prompt));
    }
    if (o.json) {
      const doc = {
        files: paths,
        seeds: r.images.map((i) => i.seed),
        ...(r.parameters ? { parameters: r.parameters } : {}),
        references: r.references.map(referenceJson),
        // Images the policy's output screen refused (not written).
        ...(r.blocked?.length ? { blocked: r.blocked } : {}),
        ...(r.retrieved ? { retrieved: { file: retrievedFile, reference: referenceJson(r.retrieved.reference) } } : {}),
        stats: r.stats,
      };
      console.log(JSON.stringify(doc, null, 2));
      return;
    }
    r.images.forEach((im, i) => console.log(`${paths[i]}  (${im.width}×${im.height}, seed ${im.seed})`));
    if (r.retrieved) console.log(`${retrievedFile}  (retrieved, not generated: ${r.retrieved.reference.name}, score ${r.retrieved.reference.score.toFixed(3)})`);
    if (opened) {
      console.log(referencesText(r.references));
      if (r.stats.retrieval?.skipped) console.log(`retrieval skipped: ${r.stats.retrieval.skipped}`);
      if (r.stats.retrieval?.cached) console.log(`cached into ${o.cacheInto}: ${r.stats.retrieval.cached.added} added, ${r.stats.retrieval.cached.skipped} already there or removed`);
      for (const s of r.stats.retrieval?.sources ?? []) console.log(`source ${s.source}: ${s.answered} answered, ${s.fetched} fetched, ${s.screenedOut} left out, ${s.used} used${s.error ? ` [${s.error}]` : ''}`);
    }
    if (r.stats.timings) {
      const t = r.stats.timings;
      const notes = [r.stats.prompt?.truncated ? `prompt truncated to ${r.stats.prompt.maxTokens} tokens` : '', r.stats.initImage?.resized ? 'init image resized' : '']
        .filter(Boolean).join('; ');
      const rt = r.stats.retrieval;
      const retrievalNote = rt ? `, ${rt.mode} k=${rt.k}, retrieval ${rt.totalMs.toFixed(0)} ms` : '';
      console.error(`${r.stats.stepsRun} steps × ${r.stats.branches} branch(es), ${r.stats.sampler}${retrievalNote}, ${(t.wallMs / 1000).toFixed(2)} s${notes ? ` (${notes})` : ''}`);
      const tr = r.stats.trajectory;
      if (tr) {
        console.error(tr.jumped
          ? `trajectory: jumped ${tr.keyStep} → ${tr.valueStep}, ${tr.denoiserCalls} denoiser calls (${tr.denoiserCallsSaved} saved), nearest key at distance ${tr.distance.map((d) => d.toFixed(2)).join(', ')}, lookup ${tr.lookupMs.toFixed(1)} ms`
          : `trajectory: no jump (${tr.fallback})`);
      }
    }
  } finally {
    bar.done();
    process.off('SIGINT', onSigint);
    await rag.close();
    if (cacheStore && cacheStore !== opened?.store) await cacheStore.close();
    await opened?.close();
    await safety?.close();
  }
}

interface DemoOptions {
  out: string;
  /** Prompts, one grid row each (default DEMO_PROMPTS). */
  prompt?: string[];
  model: string;
  steps?: number;
  seeds: number;
  providers?: string;
  threads?: number;
  /** false (--no-retrieval): skip the retrieval section. */
  retrieval?: boolean;
  /** Held-out concepts for the retrieval section (default HELDOUT_DEMO_PROMPTS). */
  heldOut?: string[];
}

/**
 * Emoji of the subcategories held out of tiny-emoji's generator training
 * (models/tiny-emoji/split.json: animal-bird, food-fruit, plant-flower), picked
 * by eye from a sweep of 8 (red apple, tulip, penguin, banana, sunflower, grapes,
 * strawberry, watermelon) where retrieval visibly moves the samples toward the
 * concept; sunflower and watermelon were left out (retrieval barely helped).
 */
export const HELDOUT_DEMO_PROMPTS = ['red apple', 'tulip', 'penguin', 'strawberry', 'grapes', 'banana'];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** A file-name part from a prompt: its first 48 characters (a long prompt would exceed NAME_MAX). */
const slug = (s: string) => s.slice(0, 48).replace(/[^a-z0-9]+/gi, '-');

interface RetrievalRow {
  concept: string;
  arm: string;
  names: string[];
  pngs: Buffer[];
  references: ReferenceUse[];
}

/** Why the retrieval section cannot run with this bundle, or null when it can. */
function retrievalSkipReason(rag: RagPipeline, modelDir: string): string | null {
  if (clipEncoderId(modelDir) === null) return 'the bundle has no CLIP encoders of its own (the demo store must be embedded by the bundle\'s encoders)';
  if (rag.modes.length === 0) return 'the bundle supports no retrieval mode';
  return null;
}

/** Held-out concepts, each without retrieval and with it in the bundle's modes, and the references used. */
async function retrievalSection(rag: RagPipeline, o: DemoOptions, dir: string, log: (s: string) => void): Promise<{ rows: RetrievalRow[]; refs: Map<string, string>; grid: string }> {
  log('  retrieval: opening the Twemoji demo store (built on first use, about 30 s)…');
  const opened = await openRetrievalStore({ demoStore: 'twemoji' }, o.model);
  const store = opened.store;
  const rows: RetrievalRow[] = [];
  const refs = new Map<string, string>(); // id → thumbnail file
  // The no-retrieval row runs at the text scale the retrieval rows use, so the rows differ only by retrieval.
  const bundle = bundleRetrieval(rag.info);
  const textScale = bundle.defaults.textScale ?? rag.info.defaults.guidanceScale;
  const arms: { arm: string; retrieval?: RetrievalOptions }[] = [{ arm: `no retrieval (CFG ${textScale})` }];
  const modes = rag.modes as RetrievalMode[];
  const defaultMode = bundle.defaults.mode ?? modes[0]!;
  const withAttention = bundle.defaults.referenceAttention === true && bundle.referenceAttention && TOKEN_MODES.includes(defaultMode);
  const attentionNote = withAttention ? ` + reference attention${bundle.defaults.attentionBranches === 'retrieval' ? ' on the retrieval branch' : ''}` : '';
  if (modes.includes(defaultMode)) arms.push({ arm: `retrieval: ${defaultMode}${attentionNote} (the bundle's default)`, retrieval: { store, mode: defaultMode } });
  if (defaultMode !== 'reference-init' && modes.includes('reference-init')) arms.push({ arm: `retrieval: reference-init (top reference, strength ${bundle.defaults.strength ?? 0.7})`, retrieval: { store, mode: 'reference-init' } });
  // The mechanism that carries identity on tiny-emoji (the model card's eval:rag table).
  if (defaultMode !== 'reference-attention' && modes.includes('reference-attention')) arms.push({ arm: `retrieval: reference-attention (top reference, fidelity ${bundle.defaults.fidelity ?? 1})`, retrieval: { store, mode: 'reference-attention' } });
  try {
    for (const [i, concept] of (o.heldOut?.length ? o.heldOut : HELDOUT_DEMO_PROMPTS).entries()) {
      for (const [a, { arm, retrieval }] of arms.entries()) {
        const bar = progressBar(process.stderr, `${concept.padEnd(14)} ${a === 0 ? 'plain' : (retrieval!.mode ?? '').padEnd(5)} `);
        const r = await rag.generate({ prompt: concept, seed: 1, batch: o.seeds, steps: o.steps, guidanceScale: textScale, ...(retrieval ? { retrieval } : {}), onProgress: (e) => bar.update(e) });
        bar.done();
        const tag = a === 0 ? 'plain' : retrieval!.mode!;
        const names = r.images.map((im) => `heldout-${String(i + 1).padStart(2, '0')}-${slug(concept)}-${tag}-seed${im.seed}.png`);
        r.images.forEach((im, j) => writeOutputFile(join(dir, names[j]!), im.png));
        for (const u of r.references) {
          if (u.id === undefined || refs.has(u.id)) continue;
          const file = `ref-${u.id}.png`;
          writeOutputFile(join(dir, file), await sharp(store.readImage(u.id)).png().toBuffer());
          refs.set(u.id, file);
        }
        rows.push({ concept, arm, names, pngs: r.images.map((im) => im.png), references: r.references });
        log(`  ${concept} — ${arm}: ${r.images.length} images${r.references.length ? `, references: ${r.references.map((u) => u.name).join(', ')}` : ''}`);
      }
    }
  } finally {
    await opened.close();
  }

  // Grid: one row per concept and arm: the seeds, a gap, then the references used.
  const { width, height } = rag.info.image;
  const scale = width <= 128 ? 2 : 1;
  const cw = width * scale;
  const ch = height * scale;
  const gap = 4;
  const refCols = Math.max(0, ...rows.map((r) => r.references.length));
  const composites: OverlayOptions[] = [];
  for (const [r, row] of rows.entries()) {
    const top = gap + r * (ch + gap) + (Math.floor(r / arms.length) * gap * 2);
    for (const [c, png] of row.pngs.entries()) {
      const input = scale === 1 ? png : await sharp(png).resize(cw, ch, { kernel: 'nearest' }).png().toBuffer();
      composites.push({ input, left: gap + c * (cw + gap), top });
    }
    for (const [c, u] of row.references.entries()) {
      if (u.id === undefined) continue;
      const input = await sharp(join(dir, refs.get(u.id)!)).resize(cw, ch, { fit: 'contain', background: { r: 255, g: 255, b: 255 } }).flatten({ background: '#ffffff' }).png().toBuffer();
      composites.push({ input, left: gap + o.seeds * (cw + gap) + 3 * gap + c * (cw + gap), top });
    }
  }
  const grid = join(dir, 'retrieval-grid.png');
  const rowsHeight = rows.length * (ch + gap) + (Math.ceil(rows.length / arms.length) - 1) * gap * 2;
  await sharp({ create: { width: gap + (o.seeds + refCols) * (cw + gap) + 3 * gap, height: gap + rowsHeight, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .png()
    .toFile(grid);
  return { rows, refs, grid };
}

function retrievalHtml(rows: RetrievalRow[], refs: Map<string, string>): string {
  const refCell = (u: ReferenceUse) => {
    const thumb = u.id !== undefined ? `<img class="ref" src="${refs.get(u.id)}" alt="${esc(u.name)}">` : '';
    return `<figure title="${esc(u.attribution)}">${thumb}<figcaption>${esc(u.name)}<br><small>${esc(u.licence)} · ${esc(u.source)} · score ${u.score.toFixed(2)}<br>${esc(usageText(u.usage))}</small></figcaption></figure>`;
  };
  const body = rows.map((r, i) => {
    const head = i === 0 || rows[i - 1]!.concept !== r.concept ? `<tr class="concept"><th colspan="3">${esc(r.concept)}</th></tr>\n` : '';
    return `${head}<tr><td>${esc(r.arm)}</td><td>${r.names.map((n) => `<img src="${n}" alt="${esc(r.concept)}" title="${n}">`).join('')}</td><td>${r.references.map(refCell).join('') || '—'}</td></tr>`;
  });
  const attributions = [...new Set(rows.flatMap((r) => r.references.map((u) => u.attribution)).filter(Boolean))];
  return `<h2>Retrieval on held-out concepts</h2>
<p>These concepts are held out of tiny-emoji's generator training (the animal-bird, food-fruit and plant-flower subcategories; see models/tiny-emoji/split.json and README.md): retrieval has to supply them.
Each concept: a row without retrieval, rows with references retrieved from the Twemoji demo store by the prompt, and the references each row used, in order of influence.</p>
<table>
${body.join('\n')}
</table>
<p><small>Reference images: ${attributions.map(esc).join('; ')}.</small></p>
`;
}

/** Generates `seeds` images for each demo prompt into `<out>/demo/`, plus a grid and an index page; then the held-out concepts with and without retrieval. */
export async function runDemo(o: DemoOptions, log: (s: string) => void = console.log): Promise<{ dir: string; grid: string; files: string[]; retrievalGrid?: string }> {
  for (const p of [...(o.prompt ?? []), ...(o.heldOut ?? [])]) checkPromptLength('prompt', p);
  const dir = ensureOutputDir(resolve(o.out, 'demo'));
  const rag = await RagPipeline.load(o.model, pipelineOptions(o));
  const pipeline = rag.pipeline;
  const files: string[] = [];
  const rows: { prompt: string; pngs: Buffer[]; names: string[] }[] = [];
  const started = performance.now();
  let retrieval: Awaited<ReturnType<typeof retrievalSection>> | undefined;
  let skipped: string | null = null;
  try {
    for (const [i, prompt] of (o.prompt?.length ? o.prompt : DEMO_PROMPTS).entries()) {
      const bar = progressBar(process.stderr, `${prompt.padEnd(14)} `);
      const r = await pipeline.generate({ prompt, seed: 1, batch: o.seeds, steps: o.steps, onProgress: (e) => bar.update(e) });
      bar.done();
      const names = r.images.map((im) => `${String(i + 1).padStart(2, '0')}-${slug(prompt)}-seed${im.seed}.png`);
      r.images.forEach((im, j) => files.push(writeOutputFile(join(dir, names[j]!), im.png)));
      rows.push({ prompt, pngs: r.images.map((im) => im.png), names });
      log(`  ${prompt}: ${r.images.length} images, ${(r.stats.timings.wallMs / 1000).toFixed(1)} s`);
    }
    skipped = o.retrieval === false ? 'turned off (--no-retrieval)' : retrievalSkipReason(rag, o.model);
    if (skipped === null) {
      retrieval = await retrievalSection(rag, o, dir, log);
      for (const r of retrieval.rows) files.push(...r.names.map((n) => join(dir, n)));
    }
  } finally {
    await rag.close();
  }

  // Grid: one row per prompt, one column per seed, each image scaled ×2 (nearest) with a 4 px gutter.
  const { width, height } = pipeline.info.image;
  const scale = width <= 128 ? 2 : 1;
  const cw = width * scale;
  const ch = height * scale;
  const gap = 4;
  const cols = o.seeds;
  const composites: OverlayOptions[] = [];
  for (const [r, row] of rows.entries()) {
    for (const [c, png] of row.pngs.entries()) {
      const input = scale === 1 ? png : await sharp(png).resize(cw, ch, { kernel: 'nearest' }).png().toBuffer();
      composites.push({ input, left: gap + c * (cw + gap), top: gap + r * (ch + gap) });
    }
  }
  const grid = join(dir, 'grid.png');
  await sharp({ create: { width: gap + cols * (cw + gap), height: gap + rows.length * (ch + gap), channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .png()
    .toFile(grid);
  const html = `<!doctype html><meta charset="utf-8"><title>ragdiff demo</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}img{image-rendering:pixelated;width:${cw}px;height:${ch}px;margin:2px}td{padding:4px 12px 4px 0;vertical-align:top}
figure{display:inline-block;margin:0 8px 0 0;text-align:center;max-width:${cw + 24}px}figcaption{font-size:12px}img.ref{image-rendering:auto}tr.concept th{text-align:left;padding-top:1em;font-size:16px}</style>
<h1>ragdiff demo — ${esc(pipeline.info.name)}</h1><table>
${rows.map((r) => `<tr><td>${esc(r.prompt)}</td><td>${r.names.map((n) => `<img src="${n}" alt="${esc(r.prompt)}" title="${n}">`).join('')}</td></tr>`).join('\n')}
</table>
${retrieval ? retrievalHtml(retrieval.rows, retrieval.refs) : `<p><small>Retrieval section skipped: ${esc(skipped ?? '')}.</small></p>\n`}`;
  writeOutputFile(join(dir, 'index.html'), html);
  log(`demo: ${files.length} images for ${rows.length} prompts${retrieval ? ` and ${new Set(retrieval.rows.map((r) => r.concept)).size} held-out concepts with and without retrieval` : ''} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  log(`  images: ${dir}`);
  log(`  grid:   ${grid} (rows: ${rows.map((r) => r.prompt).join(' | ')})`);
  if (retrieval) log(`  retrieval grid: ${retrieval.grid} (per concept: ${[...new Set(retrieval.rows.map((r) => r.arm))].join(' | ')}; then the references used)`);
  else log(`  retrieval section skipped: ${skipped}`);
  log(`  page:   ${join(dir, 'index.html')}`);
  return { dir, grid, files, ...(retrieval ? { retrievalGrid: retrieval.grid } : {}) };
}

export function registerGenerateCommands(program: Command): void {
  const gen = program
    .command('generate')
    .description('generate an image from a text prompt')
    .argument('<prompt>', 'text prompt')
    .requiredOption('-o, --output <file>', 'output PNG (batches write file-1.png, file-2.png, …)')
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('-s, --seed <n>', 'random seed (integer; default random)', intOption('seed'))
    .option('--steps <n>', 'denoising steps (1..1000)', intOption('steps'))
    .option('-g, --guidance <x>', 'classifier-free guidance scale', numberOption('guidance'))
    .option('--sampler <name>', `sampler: ${SAMPLERS.join(', ')}`, sampler)
    .option('-n, --negative <text>', 'negative prompt')
    .option('--negative-prompt <text>', 'the same as --negative')
    .option('--prompt-2 <text>', 'SDXL: the prompt for the second text encoder (default: the prompt)')
    .option('--negative-prompt-2 <text>', 'SDXL: the negative prompt for the second text encoder (default: --negative)')
    .option('--truncate-prompt', 'cut prompts to one 77-token window instead of chunking longer ones')
    .option('-b, --batch <n>', 'images to generate (1..16)', intOption('batch'))
    .option('--init-image <file>', 'image-to-image: start from this image')
    .option('--strength <x>', 'image-to-image strength (0, 1]; with a store and no --init-image, the reference-init strength', numberOption('strength'))
    .option('--karras', 'Karras sigma spacing (sigma samplers)')
    .option('--providers <list>', 'ONNX Runtime execution providers, e.g. cuda,cpu')
    .option('--threads <n>', 'intra-op threads per model', intOption('threads'))
    .option('--json', 'print files, parameters, references and stats as JSON (errors as {"error": {code, name, message}})')
    .option('--kb <file>', 'trajectory retrieval: jump ahead along the nearest trajectories of this knowledge base (ragdiff kb build)')
    .option('--key-step <n>', 'with --kb: the key step (default: the base\'s)', intOption('key-step', 1))
    .option('--value-step <n>', 'with --kb: the step to jump to (default: the base\'s first value step)', intOption('value-step', 1))
    .option('--kb-k <n>', 'with --kb: trajectories blended (default 5)', intOption('kb-k', 1))
    .option('--max-distance <x>', 'with --kb: sample in full when the nearest key is farther than this (L2)', numberOption('max-distance'))
    .option('--style <prompt>', 'with --kb: switch to this prompt after the jump (stylisation; a third guidance branch)')
    .option('--policy <file>', 'safety policy JSON (e.g. policies/default.json): screens the prompt, every reference and every image; blocked images are not written');
  addRetrievalOptions(gen).action((prompt: string, o: GenerateCliOptions) => runAction(o, () => generateCommand(prompt, o)));

  program
    .command('demo')
    .description('generate a grid of tiny-emoji images for a few prompts, and held-out concepts with and without retrieval, into <out>/demo/')
    .option('--out <dir>', 'output directory', 'out')
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('--steps <n>', 'denoising steps', intOption('steps'))
    .option('--seeds <n>', 'images per prompt (1..16)', intOption('seeds'), 4)
    .option('-p, --prompt <text...>', 'prompts, one row each (default: the demo set)')
    .option('--providers <list>', 'ONNX Runtime execution providers, e.g. cuda,cpu')
    .option('--threads <n>', 'intra-op threads per model', intOption('threads'))
    .option('--held-out <text...>', `held-out concepts for the retrieval rows (default: ${HELDOUT_DEMO_PROMPTS.join(', ')})`)
    .option('--no-retrieval', 'skip the retrieval rows (and the demo store)')
    .option('--json', 'print the files written as JSON, the log on stderr (errors as {"error": {code, name, message}})')
    .action((o: DemoOptions & { json?: boolean }) => runAction(o, async () => {
      const r = await runDemo(o, o.json ? (s) => console.error(s) : console.log);
      if (o.json) console.log(JSON.stringify(r, null, 2));
    }));
}
