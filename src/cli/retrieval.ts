/**
 * The retrieval half of `ragdiff generate` (and the demo): the options that
 * turn on retrieval-augmented generation, the store they open, the request
 * they become, and how the references used are printed.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { RagdiffError } from '../errors.js';
import { loadClipEncoders, type ClipEncoders } from '../models/encoders.js';
import { DEFAULT_ENCODER_DIR, openDemoStore, type DemoDataset } from '../store/demo.js';
import { ImageStore } from '../store/store.js';
import { RETRIEVAL_MODES, type ReferenceChoice, type ReferenceUse, type ReferenceUsage, type RetrievalMode, type RetrievalOptions } from '../rag/index.js';
import { readInputFile } from './input-file.js';
import { addLiveSourceOptions, applyLiveOptions, type LiveCliOptions } from './live-sources.js';
import type { SourceRegistry } from '../sources/index.js';
import { choiceOption, intOption, listOption, numberOption, repeatOption } from './options.js';

export const DEMO_DATASETS: readonly DemoDataset[] = ['twemoji', 'noto'];

export interface RetrievalCliOptions extends LiveCliOptions {
  store?: string;
  demoStore?: DemoDataset;
  encoderModel?: string;
  k?: number;
  mode?: RetrievalMode;
  ref?: string[];
  refImage?: string[];
  exclude?: string[];
  source?: string[];
  licence?: string[];
  tag?: string[];
  minScore?: number;
  textScale?: number;
  retrievalScale?: number;
  /** With retrieval (and no --init-image): the reference-init strength. */
  strength?: number;
  blend?: number;
  queryInFirstSlot?: boolean;
  weighting?: 'uniform' | 'score';
  reflective?: boolean;
  /** Commander's --no-attention: false switches the bundle's default reference attention off. */
  attention?: boolean;
  /** Which guidance branches attend to the reference (turns reference attention on). */
  attentionBranches?: 'prompt' | 'retrieval';
  retrieveOnlyAbove?: number;
  alsoGenerate?: boolean;
  initImage?: string;
}

/** The options that only mean something with a store, by their flag. */
const NEEDS_STORE: [keyof RetrievalCliOptions, string][] = [
  ['k', '-k'], ['mode', '--mode'], ['ref', '--ref'], ['refImage', '--ref-image'], ['exclude', '--exclude'], ['source', '--source'],
  ['licence', '--licence'], ['tag', '--tag'], ['minScore', '--min-score'], ['textScale', '--text-scale'], ['retrievalScale', '--retrieval-scale'],
  ['blend', '--blend'], ['queryInFirstSlot', '--query-in-first-slot'], ['weighting', '--weighting'], ['reflective', '--reflective'],
  ['attentionBranches', '--attention-branches'], ['retrieveOnlyAbove', '--retrieve-only-above'], ['alsoGenerate', '--also-generate'], ['encoderModel', '--encoder-model'],
  ['refUrl', '--ref-url'], ['budgetMs', '--budget-ms'], ['cacheInto', '--cache-into'],
];

export function addRetrievalOptions(cmd: Command): Command {
  return addLiveSourceOptions(cmd)
    .option('--store <dir>', 'retrieve references from this image store (see `ragdiff index`)')
    .option('--demo-store <name>', `retrieve from an emoji demo store (${DEMO_DATASETS.join(' | ')}; built on first use)`, choiceOption('demo-store', DEMO_DATASETS))
    .option('--encoder-model <dir>', "bundle whose CLIP encoders embed the query and uploads (default: --model if it has an image encoder, else tiny-emoji); must be the store's")
    .option('-k, --k <n>', "references used (default: the bundle's neighbour slots; 1 for reference-init)", intOption('k'))
    .option('--mode <mode>', `how references enter generation: ${RETRIEVAL_MODES.join(', ')} (default: the bundle's)`, choiceOption('mode', RETRIEVAL_MODES))
    .option('--ref <id>', 'use this stored image as a reference (repeatable or comma-separated; pinned ahead of retrieved ones)', listOption)
    .option('--ref-image <file>', 'use this image file as a reference for this request only, not stored (repeatable)', repeatOption)
    .option('--exclude <id>', 'never retrieve these stored images (repeatable or comma-separated)', listOption)
    .option('--source <s>', 'where to search: store and/or live sources (openverse, commons, configured ones); other names filter the store by source label (repeatable or comma-separated)', listOption)
    .option('--licence <l>', 'retrieve only images under these licences (repeatable or comma-separated)', listOption)
    .option('--tag <t>', 'retrieve only images with one of these tags (repeatable or comma-separated)', listOption)
    .option('--min-score <x>', 'drop retrieved references scoring below x (cosine, -1..1)', numberOption('min-score'))
    .option('--text-scale <x>', 'text guidance scale s_t with retrieval (default: the bundle\'s)', numberOption('text-scale'))
    .option('--retrieval-scale <x>', 'retrieval guidance scale s_r (default: the bundle\'s)', numberOption('retrieval-scale'))
    .option('--blend <n>', 'reference-init: blend the VAE latents of the top n references', intOption('blend'))
    .option('--query-in-first-slot', "token modes: the query's own embedding fills the first neighbour slot (RDM)")
    .option('--weighting <w>', 'neighbour weights: uniform or score (softmax of the scores)', choiceOption('weighting', ['uniform', 'score'] as const))
    .option('--reflective', 're-rank candidates against a cheap draft so references add what the generator lacks (RealRAG)')
    .option('--no-attention', "switch off the bundle's default reference attention (tiny-emoji adds it to the token modes)")
    .option('--attention-branches <b>', 'reference attention on every prompt-carrying guidance branch (prompt) or only on the retrieval branch, scaled by s_r (retrieval); turns reference attention on', choiceOption('attention-branches', ['prompt', 'retrieval'] as const))
    .option('--retrieve-only-above <x>', 'when the best stored reference scores ≥ x, return it instead of generating (written as <output>-retrieved.png)', numberOption('retrieve-only-above'))
    .option('--also-generate', 'with --retrieve-only-above: generate as well');
}

/** True when the options ask for retrieval; rejects retrieval options given without a store. */
export function wantsRetrieval(o: RetrievalCliOptions): boolean {
  if (o.store !== undefined && o.demoStore !== undefined) throw new RagdiffError('INVALID_ARGUMENT', 'give one store: --store DIR or --demo-store NAME, not both');
  const on = o.store !== undefined || o.demoStore !== undefined;
  if (!on) {
    const given = NEEDS_STORE.filter(([k]) => o[k] !== undefined).map(([, flag]) => flag);
    if (given.length > 0) throw new RagdiffError('INVALID_ARGUMENT', `${given.join(', ')} need${given.length === 1 ? 's' : ''} a store: add --store DIR or --demo-store ${DEMO_DATASETS.join('|')}`);
  } else if (o.alsoGenerate && o.retrieveOnlyAbove === undefined) {
    throw new RagdiffError('INVALID_ARGUMENT', '--also-generate goes with --retrieve-only-above X');
  } else if (o.attention === false && o.attentionBranches !== undefined) {
    throw new RagdiffError('INVALID_ARGUMENT', '--attention-branches turns reference attention on; --no-attention turns it off: give one');
  }
  return on;
}

/** The encoders that embed queries and uploads: --encoder-model, else the bundle's own, else tiny-emoji's. */
export function encoderDirFor(o: RetrievalCliOptions, modelDir: string): string {
  if (o.encoderModel) return o.encoderModel;
  return existsSync(join(modelDir, 'image_encoder', 'model.onnx')) && existsSync(join(modelDir, 'text_encoder', 'model.onnx')) ? modelDir : DEFAULT_ENCODER_DIR;
}

export interface OpenedStore {
  store: ImageStore;
  /** The encoders the store embeds with (a --cache-into store opens with the same). */
  encoder: ClipEncoders;
  close(): Promise<void>;
}

/**
 * Opens the store the options name (an existing one: generate never creates a
 * store) as a reader: generation only reads, so it takes no writer lock and runs
 * beside other generations, `ragdiff serve` and `ragdiff index add` on the same
 * store. The demo store is built on first use (that build alone takes a lock)
 * and then opened read-only too.
 */
export async function openRetrievalStore(o: RetrievalCliOptions, modelDir: string): Promise<OpenedStore> {
  const encoder: ClipEncoders = await loadClipEncoders(encoderDirFor(o, modelDir));
  try {
    const store = o.demoStore !== undefined
      ? await openDemoStore({ dataset: o.demoStore, encoder, store: { readOnly: true } })
      : await ImageStore.open(o.store!, { encoder, create: false, readOnly: true });
    return {
      store,
      encoder,
      async close() {
        try {
          await store.close();
        } finally {
          await encoder.close();
        }
      },
    };
  } catch (e) {
    await encoder.close();
    throw e;
  }
}

/** The --ref-image files, read before any model loads so a bad file fails at once. */
export function readUploads(o: RetrievalCliOptions): { name: string; image: Uint8Array }[] {
  return (o.refImage ?? []).map((file) => ({ name: basename(file), image: readInputFile(file, '--ref-image') }));
}

/** The `retrieval` part of the request. */
export function retrievalRequest(o: RetrievalCliOptions, store: ImageStore, uploads: { name: string; image: Uint8Array }[] = [], sources?: SourceRegistry): RetrievalOptions {
  const references: ReferenceChoice[] = [
    ...(o.ref ?? []).map((id) => ({ id })),
    ...uploads.map((u) => ({ image: u.image, name: u.name, source: 'upload' })),
  ];
  // --strength / --blend ask for the reference-init start; with --init-image, --strength is the init image's.
  const initStrength = o.initImage === undefined ? o.strength : undefined;
  const referenceInit = initStrength !== undefined || o.blend !== undefined ? { strength: initStrength, blend: o.blend } : undefined;
  const r: RetrievalOptions = { store };
  if (o.k !== undefined) r.k = o.k;
  if (o.mode !== undefined) r.mode = o.mode;
  if (references.length) r.references = references;
  if (o.exclude?.length) r.excludeIds = o.exclude;
  if (sources) applyLiveOptions(o, r, sources);
  else if (o.source?.length) r.sources = o.source;
  if (o.licence?.length) r.licences = o.licence;
  if (o.tag?.length) r.tags = o.tag;
  if (o.minScore !== undefined) r.minScore = o.minScore;
  if (o.textScale !== undefined || o.retrievalScale !== undefined) r.scales = { text: o.textScale, retrieval: o.retrievalScale };
  if (o.queryInFirstSlot) r.queryInFirstSlot = true;
  if (o.weighting !== undefined) r.neighbourWeighting = o.weighting;
  if (referenceInit) r.referenceInit = referenceInit;
  if (o.reflective) r.reflective = true;
  if (o.attention === false) r.referenceAttention = false;
  if (o.attentionBranches !== undefined) r.referenceAttention = { branches: o.attentionBranches };
  if (o.retrieveOnlyAbove !== undefined) r.retrieveOnly = { above: o.retrieveOnlyAbove, alsoGenerate: o.alsoGenerate === true };
  return r;
}

/** The fields of a reference printed in --json output and by `explain`. */
export function referenceJson(u: ReferenceUse): Record<string, unknown> {
  return {
    rank: u.rank, kind: u.kind, ...(u.id !== undefined ? { id: u.id } : {}), sha256: u.sha256, name: u.name, score: u.score,
    pinned: u.pinned, source: u.source, licence: u.licence, attribution: u.attribution, usage: u.usage, influence: u.influence,
    ...(u.url !== undefined ? { url: u.url, landingUrl: u.landingUrl, creator: u.creator, licenceUrl: u.licenceUrl } : {}),
  };
}

export function usageText(usage: readonly ReferenceUsage[]): string {
  return usage
    .map((u) => {
      switch (u.as) {
        case 'token-slot':
          return `slot ${u.slot}${u.weight !== 1 ? ` ×${u.weight.toFixed(3)}` : ''}`;
        case 'init-latent':
          return `init latent ${(u.weight * 100).toFixed(0)}% @ strength ${u.strength}`;
        case 'query-slot':
          return 'query slot';
        case 'retrieved-answer':
          return 'returned as the answer';
        default:
          return (u as { as: string }).as;
      }
    })
    .join(', ');
}

/** "references:" and one line per reference, in order of influence. */
export function referencesText(refs: readonly ReferenceUse[]): string {
  if (refs.length === 0) return 'references: none';
  const lines = refs.map((u) => {
    const who = u.id ?? `upload ${u.sha256.slice(0, 16)}`;
    const flags = [u.pinned ? 'pinned' : '', `influence ${(u.influence * 100).toFixed(0)}%`].filter(Boolean).join(', ');
    return `  ${u.rank}. ${u.name || '(unnamed)'}  ${who}  score ${u.score.toFixed(3)}  [${u.source}, ${u.licence}]  ${usageText(u.usage)} (${flags})` +
      (u.attribution ? `\n     ${u.attribution}` : '') +
      (u.url !== undefined ? `\n     ${u.landingUrl ?? u.url}${u.licenceUrl ? `  (${u.licenceUrl})` : ''}` : '');
  });
  return ['references:', ...lines].join('\n');
}
