/**
 * The demo stores: the emoji shipped in npm (Twemoji from
 * emoji-datasource-twitter, CC-BY 4.0; Noto from emoji-datasource-google,
 * Apache-2.0), embedded with the tiny-emoji encoders on first use and cached.
 *
 * The cache is keyed by dataset and encoder: retraining the encoders builds
 * a fresh store instead of mixing embeddings. A store is built in a private
 * directory and renamed into place when complete, by one process at a time
 * (see openDemoStore), so a killed build or two processes building at once
 * never leave a half-built store behind.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagdiffError, rangeError } from '../errors.js';
import { loadClipEncoders, type ImageTextEncoder } from '../models/encoders.js';
import { ImageStore, type AddInput, type AddProgress, type ImageStoreOptions } from './store.js';
import { acquireWriterLock, writerLockFree, WRITER_LOCK_FILE, type WriterLock } from './writer-lock.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEFAULT_ENCODER_DIR = join(packageRoot, 'models', 'tiny-emoji');

export type DemoDataset = 'twemoji' | 'noto';

interface DatasetInfo {
  pkg: string;
  imageDir: string;
  hasFlag: 'has_img_twitter' | 'has_img_google';
  source: string;
  licence: string;
  attribution: string;
}

const DATASETS: Record<DemoDataset, DatasetInfo> = {
  twemoji: {
    pkg: 'emoji-datasource-twitter',
    imageDir: 'img/twitter/64',
    hasFlag: 'has_img_twitter',
    source: 'twemoji',
    licence: 'CC-BY-4.0',
    attribution: 'Twemoji © Twitter, Inc and other contributors, CC-BY 4.0 (via emoji-datasource-twitter)',
  },
  noto: {
    pkg: 'emoji-datasource-google',
    imageDir: 'img/google/64',
    hasFlag: 'has_img_google',
    source: 'noto',
    licence: 'Apache-2.0',
    attribution: 'Noto Emoji © Google LLC, Apache-2.0 (via emoji-datasource-google)',
  },
};

interface EmojiEntry {
  name: string | null;
  unified: string;
  image: string;
  short_name: string;
  short_names: string[];
  category: string;
  subcategory: string;
  has_img_twitter?: boolean;
  has_img_google?: boolean;
}

export interface DemoStoreOptions {
  dataset?: DemoDataset;
  /** An encoder; default: the tiny-emoji bundle's (see `encoderDir`). */
  encoder?: ImageTextEncoder;
  encoderDir?: string;
  /** Where cached stores live. Default $RAGDIFF_CACHE_DIR, else <package>/.cache. */
  cacheDir?: string;
  /** Progress while building (first use only). */
  onProgress?: (p: AddProgress) => void;
  /** Extra store options (screen, exactSearchBelow, …). */
  store?: Omit<ImageStoreOptions, 'encoder'>;
}

export function defaultCacheDir(): string {
  return process.env.RAGDIFF_CACHE_DIR ? resolve(process.env.RAGDIFF_CACHE_DIR) : join(packageRoot, '.cache');
}

/** The emoji of a dataset as store inputs with their metadata (one image per base emoji). */
export function demoInputs(dataset: DemoDataset = 'twemoji'): AddInput[] {
  const info = DATASETS[dataset];
  if (!info) throw rangeError('INVALID_VALUE', `dataset must be "twemoji" or "noto", got ${JSON.stringify(dataset)}`);
  let root: string;
  try {
    root = dirname(createRequire(import.meta.url).resolve(`${info.pkg}/package.json`));
  } catch (e) {
    throw new RagdiffError('DEMO_DATA_MISSING', `the demo store needs the npm package ${info.pkg}; install it`, { cause: e });
  }
  const emoji = JSON.parse(readFileSync(join(root, 'emoji.json'), 'utf8')) as EmojiEntry[];
  return emoji
    .filter((e) => e[info.hasFlag] && existsSync(join(root, info.imageDir, e.image)))
    .map((e) => ({
      path: join(root, info.imageDir, e.image),
      meta: {
        name: (e.name ?? e.short_name.replace(/_/g, ' ')).toLowerCase(),
        tags: [`category:${e.category}`, `subcategory:${e.subcategory}`, `unified:${e.unified}`, ...e.short_names.slice(0, 8)],
      },
    }));
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Opens the demo store of `dataset`, building it on first use (about 2,000
 * images; seconds). The caller owns the returned store and closes it. Pass
 * `store: { readOnly: true }` to read it beside other processes.
 *
 * Concurrent first use is safe: one process builds (it holds a build lock,
 * a kernel lock like the store's writer lock) in a private
 * `.partial-<pid>-<random>` directory renamed into place when complete;
 * the others wait for the lock, then open the finished store. Whoever holds
 * the build lock first deletes `.partial-*` directories left by killed
 * builds (none can be live: their builder would hold the lock).
 */
export async function openDemoStore(options: DemoStoreOptions = {}): Promise<ImageStore> {
  const dataset = options.dataset ?? 'twemoji';
  const info = DATASETS[dataset];
  if (!info) throw rangeError('INVALID_VALUE', `dataset must be "twemoji" or "noto", got ${JSON.stringify(dataset)}`);
  if (!options.encoder) {
    // An encoder loaded here is the store's alone: it closes with the store (or here, if opening fails).
    const own = await loadClipEncoders(options.encoderDir ?? DEFAULT_ENCODER_DIR);
    try {
      return await openDemoStore({ ...options, encoder: own, store: { ...options.store, ownsEncoder: true } });
    } catch (e) {
      await own.close();
      throw e;
    }
  }
  const encoder = options.encoder;
  const cache = options.cacheDir ?? defaultCacheDir();
  const prefix = `demo-${dataset}-`;
  const name = `${prefix}${safeName(encoder.id ?? `anonymous-${encoder.dim}`)}`;
  const dir = join(cache, name);
  const { ownsEncoder, ...storeRest } = options.store ?? {};
  const storeOptions: ImageStoreOptions = { nearDuplicates: false, ...storeRest, encoder };
  // Only the store handed back owns the encoder: the build's own store closes before it.
  const openBuilt = () => ImageStore.open(dir, { ...storeOptions, create: false, ownsEncoder: ownsEncoder ?? false });
  if (existsSync(join(dir, 'COMPLETE'))) return openBuilt();

  mkdirSync(cache, { recursive: true });
  const lockPath = join(cache, `${name}.build.lock`);
  let lock: WriterLock | undefined;
  for (;;) {
    try {
      lock = acquireWriterLock(lockPath);
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== 'STORE_LOCKED') throw e;
    }
    // Another process is building it: wait for it to finish (or die: the kernel then frees the lock).
    await sleep(100);
    if (existsSync(join(dir, 'COMPLETE'))) return openBuilt();
  }
  try {
    if (existsSync(join(dir, 'COMPLETE'))) return await openBuilt();
    // Left by builds that were killed: nobody else can be building while we hold the lock.
    for (const f of readdirSync(cache)) if (f.startsWith(`${name}.partial-`)) rmSync(join(cache, f), { recursive: true, force: true });
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true }); // a store without COMPLETE is not one we finished
    const partial = `${dir}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
    const store = await ImageStore.open(partial, { ...storeOptions, readOnly: false });
    try {
      // Distinct emoji share pixels (flags of territories, family variants): exact copies
      // are reported as duplicates and skipped; near-duplicate merging is off for the demo.
      const report = await store.add(demoInputs(dataset), { source: info.source, licence: info.licence, attribution: info.attribution }, { onProgress: options.onProgress });
      if (report.failed > 0) {
        const first = report.items.find((i) => i.status === 'failed');
        throw new RagdiffError('DEMO_BUILD_FAILED', `${report.failed} demo images failed to ingest (first: ${first?.input}: ${first?.error?.message})`);
      }
    } catch (e) {
      await store.close();
      rmSync(partial, { recursive: true, force: true });
      throw e;
    }
    await store.close();
    writeFileSync(join(partial, 'COMPLETE'), new Date().toISOString());
    renameSync(partial, dir);
    // Stores of older encoders are stale; remove the ones no writer holds (a reader of one would lose it).
    for (const f of readdirSync(cache)) {
      const p = join(cache, f);
      if (f.startsWith(prefix) && f !== name && !f.includes('.partial-') && !f.endsWith('.build.lock') && writerLockFree(join(p, WRITER_LOCK_FILE))) {
        rmSync(p, { recursive: true, force: true });
      }
    }
  } finally {
    lock.release();
  }
  return openBuilt();
}
