/**
 * The concept-transfer evaluation's fixtures and bookkeeping (bench/eval-rag.ts
 * drives it): the held-out split, the prompt samples, the guards that keep the
 * evaluation honest, and the scoring of an arm's outputs.
 *
 * Guards (each a typed error): the bundle's split file must exist; stores must
 * be embedded by the bundle's own encoder; evaluation seeds must not overlap
 * the seeds scales were tuned with (tuning uses training prompts only).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { RagdiffError } from '../errors.js';
import { loadClipEncoders, type ImageTextEncoder, type RgbImage } from '../models/encoders.js';
import type { ImageStore } from '../store/index.js';
import { NEAR_COPY_PSNR_DB, NEAR_WHITE_MIN, PixelDatabase, foregroundPsnr8, psnr8 } from './copy-guard.js';
import { baseEmojiNames, loadEmojiRecords } from './emoji-names.js';
import { requireDisjointSeeds, requireSameEncoder, requireSplit, type HeldOutSplit } from './guards.js';
import { NameRanker } from './recognition.js';
import { signTest, type SignTestResult as SignTest } from './sign-test.js';
import { StyleClassifier } from './style-classifier.js';
import { pairedSwap, renderingPreference, type SwapValues } from './swap.js';

/** Encoded image → 8-bit RGB at size × size, alpha composited on white (as the pipeline decodes references). */
export async function rgbOf(png: Uint8Array, size: number): Promise<Uint8Array> {
  const buf = await sharp(png).flatten({ background: '#ffffff' }).resize(size, size, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** First seed of the evaluation's held-out samples (prompt i uses EVAL_SEED_BASE + 4i … + 3); tuning uses others. */
export const EVAL_SEED_BASE = 20_000;

export interface Sample {
  prompt: string;
  /** The base name the image should be recognised as. */
  target: string;
  png: Uint8Array;
  /** Encoded bytes of the references used (for PSNR to them). */
  references: Uint8Array[];
}

export interface ArmSummary {
  n: number;
  top1: number;
  top5: number;
  /** Copy guard: share of outputs with PSNR > 20 dB to some database image; mean of that best PSNR; mean best PSNR to the references used; mean best embedding cosine to the database. */
  nearCopy?: number;
  meanDbPsnr?: number;
  meanRefPsnr?: number;
  meanDbCosine?: number;
  /**
   * Copy guard by foreground (background-aware; src/eval/copy-guard.ts): PSNR over the union of the two
   * images' non-near-white pixels (near-white = every channel ≥ 240, snapped to white). Share of outputs
   * with foreground PSNR > 20 dB to some database image; mean of that best foreground PSNR; mean best
   * foreground PSNR to the references used.
   */
  nearCopyForeground?: number;
  meanDbPsnrForeground?: number;
  meanRefPsnrForeground?: number;
  /** Database swap: share classified Noto. */
  noto?: number;
}

export interface ArmResult {
  summary: ArmSummary;
  /** Per prompt (in order), the mean top-1 / top-5 hit over its noises. */
  perPrompt: { prompts: string[]; top1: number[]; top5: number[] };
  /** Per output, for the paired database swap (src/eval/swap.ts). */
  swap?: SwapValues;
}


const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** What the copy-guard columns mean; written under the table in bench/RESULTS.md and into the JSON. */
export const COPY_GUARD_CAPTION =
  `Copy guard. *near-copies*: share of outputs whose PSNR (8-bit RGB, whole image) to some database image is > ${NEAR_COPY_PSNR_DB} dB (the issue's rule). ` +
  `It partly measures the white background emoji share: two different emoji on white can score > ${NEAR_COPY_PSNR_DB} dB. ` +
  `*near-copies (foreground)*: the same threshold on a background-aware PSNR — a pixel is near-white when all three channels are ≥ ${NEAR_WHITE_MIN} ` +
  `(the tiny-emoji VAE keeps 99.9% of real Twemoji background pixels within 12 levels of white), near-white pixels are set to white in both images, ` +
  `and the squared error is averaged over the union of the two images' non-near-white pixels only (two all-white images: 0 dB, never a copy). ` +
  `*PSNR to db / refs*, *foreground PSNR to db / refs*: mean over outputs of the best PSNR to any database image / to the references the output used (∞ counted as 99). ` +
  `*cos to db*: mean best image-embedding cosine to the database.`;

/** What the swap table's columns mean (src/eval/swap.ts). */
export const SWAP_CAPTION =
  'Database swap. *classified Noto*: share of outputs the style classifier calls Noto, with the Noto / the Twemoji database (the issue\'s measure; ' +
  'the classifier was trained on VAE round-trips of real images, and its share on generated images is offset by the generator\'s own look: see its calibration). ' +
  '*style margin toward Noto*: share of output pairs (same prompt and noise) whose Noto-database output has the larger classifier margin logit(noto) − logit(twemoji), ' +
  'and the per-prompt sign test — the pairing cancels what both outputs share, so no calibration is needed. ' +
  '*nearer the target\'s Noto image*: share of outputs whose PSNR to the Noto image of the emoji asked for is higher than to its Twemoji image (no classifier). ' +
  '*rendering preference toward Noto*: the same difference of PSNRs, paired as for the margin.';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Tuning {
  seeds: number[];
  chosen?: Record<string, unknown>;
}

export class EvalSuite {
  private readonly pixelDbs = new Map<string, Promise<PixelDatabase>>();
  private readonly embedDbs = new Map<string, Float32Array[]>();
  private renderingStores: { twemoji: ImageStore; noto: ImageStore; twemojiByName: Map<string, { id: string; unified: string }>; notoByUnified: Map<string, string> } | null = null;
  private readonly renderings = new Map<string, Promise<{ twemoji: Uint8Array; noto: Uint8Array } | null>>();
  private constructor(
    private readonly encoder: ImageTextEncoder & { close?(): Promise<void> },
    private readonly ranker: NameRanker,
    private readonly split: HeldOutSplit,
    readonly tuning: Tuning,
    private readonly style: StyleClassifier | null,
    private readonly size: number,
  ) {}

  static async open(modelDir: string, options: { tuningFile?: string } = {}): Promise<EvalSuite> {
    const split = requireSplit(modelDir);
    const tuning: Tuning = options.tuningFile && existsSync(options.tuningFile) ? (JSON.parse(readFileSync(options.tuningFile, 'utf8')) as Tuning) : { seeds: [] };
    const encoder = await loadClipEncoders(modelDir);
    const ranker = await NameRanker.build(encoder, baseEmojiNames(loadEmojiRecords()));
    const stylePath = join(modelDir, 'eval', 'style_classifier.onnx');
    const style = existsSync(stylePath) ? await StyleClassifier.load(stylePath) : null;
    return new EvalSuite(encoder, ranker, split, tuning, style, encoder.imageSize?.width ?? 64);
  }

  async close(): Promise<void> {
    await this.encoder.close?.();
    await this.style?.close();
  }

  /** A store must be embedded by the bundle's own encoder (retrieval reads its embeddings through the bundle's image_proj). */
  checkStore(store: ImageStore): void {
    requireSameEncoder(store.stats(), this.encoder);
  }

  /**
   * The two databases whose images of the same emoji (matched by its `unified:` tag) are the renderings
   * the paired swap compares each output with; without them only the style margin is recorded.
   */
  useSwapRenderings(twemoji: ImageStore, noto: ImageStore): void {
    const twemojiByName = new Map<string, { id: string; unified: string }>();
    const notoByUnified = new Map<string, string>();
    for (const [store, add] of [
      [twemoji, (r: { id: string; name: string }, u: string) => { if (!twemojiByName.has(r.name)) twemojiByName.set(r.name, { id: r.id, unified: u }); }],
      [noto, (r: { id: string }, u: string) => { if (!notoByUnified.has(u)) notoByUnified.set(u, r.id); }],
    ] as const) {
      for (const r of store.list({ limit: 1_000_000, status: 'active' })) {
        const tag = r.tags.find((t) => t.startsWith('unified:'));
        if (tag) add(r, tag.slice(8));
      }
    }
    this.renderingStores = { twemoji, noto, twemojiByName, notoByUnified };
    this.renderings.clear();
  }

  /** The target's Twemoji and Noto images (RGB at the evaluation size), or null when a database lacks it. */
  private rendering(name: string): Promise<{ twemoji: Uint8Array; noto: Uint8Array } | null> {
    let p = this.renderings.get(name);
    if (!p) {
      const { twemoji, noto, twemojiByName, notoByUnified } = this.renderingStores!;
      const tw = twemojiByName.get(name);
      const notoId = tw && notoByUnified.get(tw.unified);
      p = tw && notoId
        ? Promise.all([rgbOf(twemoji.readImage(tw.id), this.size), rgbOf(noto.readImage(notoId), this.size)]).then(([t, n]) => ({ twemoji: t, noto: n }))
        : Promise.resolve(null);
      this.renderings.set(name, p);
    }
    return p;
  }

  /** Evaluation seeds must not be ones scales were tuned with. */
  checkSeeds(seeds: readonly number[]): void {
    requireDisjointSeeds(seeds, this.tuning.seeds);
  }

  /** The held-out emoji of the split, as stored in `store` (one image per base emoji), in split order. */
  heldOut(store: ImageStore): { id: string; name: string }[] {
    const byCode = new Map<string, { id: string; name: string }>();
    for (const r of store.list({ limit: 1_000_000, status: 'active' })) {
      const tag = r.tags.find((t) => t.startsWith('unified:'));
      if (tag) byCode.set(tag.slice(8), { id: r.id, name: r.name });
    }
    const out = this.split.heldout.map((c) => byCode.get(c)).filter((x): x is { id: string; name: string } => x !== undefined);
    if (out.length !== this.split.heldout.length) {
      throw new RagdiffError('EVAL_SPLIT_MISSING', `only ${out.length} of the split's ${this.split.heldout.length} held-out emoji are in the store ${store.dir}`);
    }
    return out;
  }

  /** A fixed sample of base emoji the generator was trained on. */
  trainingPrompts(store: ImageStore, n: number): { id: string; name: string }[] {
    const held = new Set(this.split.heldoutSubcategories.map((s) => `subcategory:${s}`));
    const pool = store.list({ limit: 1_000_000, status: 'active' }).filter((r) => !r.tags.some((t) => held.has(t)) && this.ranker.indexOf(r.name) >= 0);
    pool.sort((a, b) => (a.name < b.name ? -1 : 1));
    const rand = mulberry32(0);
    for (let i = pool.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    return pool.slice(0, n).map((r) => ({ id: r.id, name: r.name }));
  }

  private pixelDb(store: ImageStore): Promise<PixelDatabase> {
    let p = this.pixelDbs.get(store.dir);
    if (!p) {
      const rows = store.list({ limit: 1_000_000, status: 'active' });
      const size = this.size;
      p = Promise.all(rows.map(async (r): Promise<RgbImage> => ({ rgb: await rgbOf(store.readImage(r.id), size), width: size, height: size }))).then((imgs) => PixelDatabase.fromImages(imgs, size, size));
      this.pixelDbs.set(store.dir, p);
    }
    return p;
  }

  private embedDb(store: ImageStore): Float32Array[] {
    let e = this.embedDbs.get(store.dir);
    if (!e) {
      e = store.list({ limit: 1_000_000, status: 'active' }).map((r) => store.embeddingOf(r.id)!).filter(Boolean);
      this.embedDbs.set(store.dir, e);
    }
    return e;
  }

  /** Recognition, copy guard and style of one arm's outputs. */
  async score(samples: Sample[], db: ImageStore, options: { copyGuard?: boolean } = {}): Promise<ArmResult> {
    const size = this.size;
    const rgbs = await Promise.all(samples.map((s) => rgbOf(s.png, size)));
    const images = rgbs.map((rgb) => ({ rgb, width: size, height: size }));
    const targets = samples.map((s) => this.ranker.indexOf(s.target));
    if (targets.some((t) => t < 0)) throw new RagdiffError('INVALID_VALUE', `a target is not a base emoji name: ${samples[targets.indexOf(-1)]!.target}`);
    const ranks: number[] = [];
    for (let i = 0; i < images.length; i += 64) ranks.push(...(await this.ranker.recognise(this.encoder, images.slice(i, i + 64), targets.slice(i, i + 64))).ranks);
    const summary: ArmSummary = {
      n: samples.length,
      top1: round(ranks.filter((r) => r < 1).length / ranks.length),
      top5: round(ranks.filter((r) => r < 5).length / ranks.length),
    };
    if (options.copyGuard !== false) {
      const pdb = await this.pixelDb(db);
      const edb = this.embedDb(db);
      // One pass over the database per output gives both the whole-image and the foreground nearest.
      const nearest = rgbs.map((rgb) => pdb.nearestBoth(rgb));
      const mean = (xs: number[]) => round(xs.reduce((a, b) => a + Math.min(b, 99), 0) / xs.length, 2);
      const best = nearest.map((n) => n.psnr);
      summary.nearCopy = round(best.filter((p) => p > NEAR_COPY_PSNR_DB).length / best.length);
      summary.meanDbPsnr = mean(best);
      const bestFg = nearest.map((n) => n.foregroundPsnr);
      summary.nearCopyForeground = round(bestFg.filter((p) => p > NEAR_COPY_PSNR_DB).length / bestFg.length);
      summary.meanDbPsnrForeground = mean(bestFg);
      const refBest: number[] = [];
      const refBestFg: number[] = [];
      for (let i = 0; i < samples.length; i++) {
        const refs = samples[i]!.references.filter((b) => b.length > 0);
        if (!refs.length) continue;
        const refRgbs = await Promise.all(refs.map((b) => rgbOf(b, size)));
        refBest.push(Math.max(...refRgbs.map((r) => psnr8(rgbs[i]!, r))));
        refBestFg.push(Math.max(...refRgbs.map((r) => foregroundPsnr8(rgbs[i]!, r, NEAR_WHITE_MIN))));
      }
      if (refBest.length) summary.meanRefPsnr = mean(refBest);
      if (refBestFg.length) summary.meanRefPsnrForeground = mean(refBestFg);
      const emb = await this.encoder.embedImages(images);
      const cos = emb.map((e) => Math.max(...edb.map((d) => d.reduce((a, x, j) => a + x * e[j]!, 0))));
      summary.meanDbCosine = round(cos.reduce((a, b) => a + b, 0) / cos.length);
    }
    const notoMargin = samples.map(() => NaN);
    if (this.style) {
      const st = await this.style.classify(images);
      summary.noto = round(st.notoShare);
      const k = this.style.info.classes.indexOf('noto');
      for (let i = 0; i < samples.length; i++) notoMargin[i] = st.logits[2 * i + k]! - st.logits[2 * i + 1 - k]!;
    }
    const renderingPref = samples.map(() => NaN);
    if (this.renderingStores) {
      for (let i = 0; i < samples.length; i++) {
        const r = await this.rendering(samples[i]!.target);
        if (r) renderingPref[i] = renderingPreference(rgbs[i]!, r.noto, r.twemoji);
      }
    }
    const prompts = [...new Set(samples.map((s) => s.prompt))];
    const per = (k: number) => prompts.map((p) => {
      const idx = samples.map((s, i) => (s.prompt === p ? i : -1)).filter((i) => i >= 0);
      return idx.filter((i) => ranks[i]! < k).length / idx.length;
    });
    return { summary, perPrompt: { prompts, top1: per(1), top5: per(5) }, swap: { prompts: samples.map((s) => s.prompt), notoMargin, renderingPref } };
  }

  /** The results table (Markdown) and its JSON, with per-prompt sign tests. */
  report(r: { held: Record<string, ArmResult>; training: Record<string, ArmResult>; baseline: string; pairs: [string, string][]; swap: [string, string][] }): { markdown: string; json: Record<string, unknown> } {
    const base = r.held[r.baseline];
    const test = (a: ArmResult, b: ArmResult, k: 'top1' | 'top5'): SignTest => signTest(a.perPrompt[k], b.perPrompt[k]);
    const fmtP = (t: SignTest) => `${t.better}/${t.worse}, p=${t.p < 0.001 ? t.p.toExponential(1) : t.p.toFixed(3)}`;
    const lines = ['| arm (held-out, prompts × noises) | top-1 | top-5 | vs none, top-5 (better/worse, p) | near-copies | near-copies (foreground) | PSNR to db / refs | foreground PSNR to db / refs | cos to db | classified Noto |', '|---|---|---|---|---|---|---|---|---|---|'];
    const json: Record<string, unknown> = { held: {}, training: {}, pairs: {}, swap: {} };
    for (const [label, a] of Object.entries(r.held)) {
      const s = a.summary;
      const vs = base && label !== r.baseline ? fmtP(test(a, base, 'top5')) : '';
      lines.push(`| ${label} | ${s.top1} | ${s.top5} | ${vs} | ${s.nearCopy ?? ''} | ${s.nearCopyForeground ?? ''} | ${s.meanDbPsnr ?? ''} / ${s.meanRefPsnr ?? '–'} | ${s.meanDbPsnrForeground ?? ''} / ${s.meanRefPsnrForeground ?? '–'} | ${s.meanDbCosine ?? ''} | ${s.noto ?? '–'} |`);
      (json.held as Record<string, unknown>)[label] = { ...s, perPrompt: a.perPrompt, ...(base && label !== r.baseline ? { vsNone: { top1: test(a, base, 'top1'), top5: test(a, base, 'top5') } } : {}) };
    }
    lines.push('', COPY_GUARD_CAPTION);
    json.copyGuard = { thresholdDb: NEAR_COPY_PSNR_DB, nearWhiteMin: NEAR_WHITE_MIN, definition: COPY_GUARD_CAPTION };
    const pairs = r.pairs.filter(([x, y]) => r.held[x] && r.held[y]);
    if (pairs.length) lines.push('', '| pair (held-out) | Δ top-1 | Δ top-5 | top-5 sign test (better/worse, p) |', '|---|---|---|---|');
    for (const [x, y] of pairs) {
      const a = r.held[x]!;
      const b = r.held[y]!;
      const t5 = test(a, b, 'top5');
      lines.push(`| ${x} vs ${y} | ${round(a.summary.top1 - b.summary.top1)} | ${round(a.summary.top5 - b.summary.top5)} | ${fmtP(t5)} |`);
      (json.pairs as Record<string, unknown>)[`${x} vs ${y}`] = { dTop1: round(a.summary.top1 - b.summary.top1), dTop5: round(a.summary.top5 - b.summary.top5), top1: test(a, b, 'top1'), top5: t5 };
    }
    if (Object.keys(r.training).length) {
      lines.push('', '| arm (training prompts × 1 noise) | top-1 | top-5 |', '|---|---|---|');
      for (const [label, a] of Object.entries(r.training)) {
        lines.push(`| ${label} | ${a.summary.top1} | ${a.summary.top5} |`);
        (json.training as Record<string, unknown>)[label] = a.summary;
      }
      const tb = r.training[r.baseline];
      for (const [label, a] of Object.entries(r.training)) {
        if (!tb || label === r.baseline) continue;
        (json.training as Record<string, Record<string, unknown>>)[label]!.vsNone = { top1: test(a, tb, 'top1'), top5: test(a, tb, 'top5') };
      }
    }
    const swaps = r.swap.filter(([x, y]) => r.held[x] && r.held[y]);
    const anyPaired = swaps.some(([x, y]) => r.held[x]!.swap && r.held[y]!.swap);
    if (anyPaired) {
      lines.push('', '| database swap (held-out; Noto db vs Twemoji db, same prompts and noises) | classified Noto | style margin toward Noto: output pairs, prompts (better/worse, p) | nearer the target\'s Noto image | rendering preference toward Noto: output pairs, prompts (better/worse, p) |', '|---|---|---|---|---|');
    }
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    for (const [x, y] of swaps) {
      const a = r.held[x]!;
      const b = r.held[y]!;
      const entry: Record<string, unknown> = {};
      if (a.summary.noto !== undefined && b.summary.noto !== undefined) Object.assign(entry, { noto: a.summary.noto, twemoji: b.summary.noto });
      if (a.swap && b.swap) {
        const p = pairedSwap(a.swap, b.swap);
        entry.paired = p;
        const m = p.styleMargin;
        const q = p.renderingPreference;
        lines.push(`| ${x} vs ${y} | ${a.summary.noto ?? '–'} / ${b.summary.noto ?? '–'} | ${m ? `${pct(m.pairsTowardNoto)}, ${fmtP(m.prompts)}` : '–'} | ${q ? `${pct(q.positiveNotoDb)} / ${pct(q.positiveTwemojiDb)}` : '–'} | ${q ? `${pct(q.pairsTowardNoto)}, ${fmtP(q.prompts)}` : '–'} |`);
      }
      (json.swap as Record<string, unknown>)[`${x} vs ${y}`] = entry;
    }
    if (anyPaired) {
      const v = base?.swap?.renderingPref.filter(Number.isFinite) ?? [];
      const none = v.length ? round(v.filter((x) => x > 0).length / v.length) : undefined;
      if (none !== undefined) (json.swap as Record<string, unknown>).noRetrievalNearerNoto = none;
      const noneText = base ? ` Without retrieval (${r.baseline}): classified Noto ${base.summary.noto ?? '–'}, nearer the Noto image ${none === undefined ? '–' : pct(none)}.` : '';
      lines.push('', SWAP_CAPTION + noneText);
      (json.swap as Record<string, unknown>).definition = SWAP_CAPTION;
    }
    return { markdown: lines.join('\n'), json };
  }

  /** A picture grid: one row per prompt, one column per arm (first noise), labelled. */
  async grid(path: string, rows: string[], columns: Record<string, Uint8Array[]>): Promise<void> {
    const S = 72;
    const labelW = 150;
    const headH = 46;
    const cols = Object.entries(columns);
    const width = labelW + cols.length * S;
    const height = headH + rows.length * S;
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    const text = [
      ...cols.map(([label, _], c) => {
        const [a, b] = label.split('/');
        return `<text x="${labelW + c * S + S / 2}" y="18" font-size="10" text-anchor="middle" font-family="sans-serif">${esc(a!)}</text>` +
          (b ? `<text x="${labelW + c * S + S / 2}" y="32" font-size="10" text-anchor="middle" font-family="sans-serif">${esc(b)}</text>` : '');
      }),
      ...rows.map((r, i) => `<text x="6" y="${headH + i * S + S / 2 + 4}" font-size="11" font-family="sans-serif">${esc(r)}</text>`),
    ].join('');
    const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>${text}</svg>`);
    const tiles: OverlayOptions[] = [];
    for (let c = 0; c < cols.length; c++) {
      const imgs = cols[c]![1];
      for (let i = 0; i < rows.length && i < imgs.length; i++) {
        tiles.push({ input: await sharp(imgs[i]!).flatten({ background: '#ffffff' }).resize(S - 4, S - 4, { kernel: 'nearest' }).png().toBuffer(), left: labelW + c * S + 2, top: headH + i * S + 2 });
      }
    }
    await sharp(svg).composite(tiles).png().toFile(path);
  }
}
