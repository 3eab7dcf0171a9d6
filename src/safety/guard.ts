/**
 * The one object every path goes through: it holds the policy in force and
 * enforces it at the five doors, recording each decision in the audit log.
 *
 *   ingest     guard.imageScreen()      → ImageStore.open(dir, { encoder, screen })
 *   retrieval  guard.referenceScreen()  → RagPipeline { screen } (re-checks stored references
 *              against the policy in force, with the embeddings retrieval already computed)
 *   uploads and user-picked references: the same referenceScreen (and the store's imageScreen
 *              when the upload is embedded by a store opened with it)
 *   prompt     guard.promptScreen()     → RagPipeline { promptScreen }
 *   output     guard.outputScreen()     → RagPipeline { outputScreen }
 *
 * `guard.ragOptions()` gives all RagPipeline hooks at once (plus the source
 * cap and the policy stamp for provenance). Every hook reads the policy in
 * force at call time, so `update()` applies to open stores and pipelines at
 * their next call, without re-ingesting. An invalid new policy is refused with
 * POLICY_INVALID and the previous one stays in force.
 */
import { RagdiffError, typeError } from '../errors.js';
import { DEFAULT_MAX_PIXELS } from '../image/decode.js';
import { decodeRgbPng } from '../image/png-rgb.js';
import type { ImageTextEncoder, RgbImage } from '../models/encoders.js';
import { areaResize, decodeCandidate, type ImageScreen, type ScreenCandidate, type ScreenVerdict } from '../store/gate.js';
import type { OutputScreen, PolicyStamp, PromptScreen, ReferenceScreen, SafetyVerdict } from '../rag/screen.js';
import { orientationHashes, PHASH_SIZE } from '../store/phash.js';
import { AuditLog, type AuditLogOptions } from './audit.js';
import { loadPolicy, type SafetyPolicy } from './load.js';
import { ClusterWatch, type SourceReport } from './poisoning.js';
import type { SafetyDoor } from './policy.js';
import { conceptHits, decide, hashHits, metaHits, promptWindows, reasonOf, type RuleHit, type SafetyDecision } from './rules.js';

export interface SafetyGuardOptions {
  /** The bundle's encoders (the ones the store and the policy's thresholds use). */
  encoder: ImageTextEncoder;
  /** Where decisions are logged; an AuditLog, its options, or false for none. Default: none. */
  audit?: AuditLog | AuditLogOptions | false;
  /** Folder for relative example-image paths of object policies. */
  baseDir?: string;
}

/** The hooks RagPipeline takes, bound to this guard. */
export interface GuardRagOptions {
  screen: ReferenceScreen;
  promptScreen: PromptScreen;
  outputScreen: OutputScreen;
  maxPerSource: () => number | undefined;
  policyStamp: () => PolicyStamp;
}

export class SafetyGuard {
  private current: SafetyPolicy;
  readonly encoder: ImageTextEncoder;
  readonly audit: AuditLog | null;
  private readonly baseDir?: string;
  private readonly watch = new ClusterWatch();

  private constructor(policy: SafetyPolicy, options: SafetyGuardOptions) {
    this.current = policy;
    this.encoder = options.encoder;
    this.baseDir = options.baseDir;
    this.audit = options.audit instanceof AuditLog ? options.audit : options.audit ? new AuditLog(options.audit) : null;
  }

  /** Loads `policy` (a path, a parsed object, or a policy loadPolicy compiled) and returns a guard enforcing it. */
  static async create(policy: string | object | SafetyPolicy, options: SafetyGuardOptions): Promise<SafetyGuard> {
    if (!options || typeof options !== 'object' || !options.encoder) throw typeError('INVALID_TYPE', 'SafetyGuard.create needs { encoder }');
    const compiled = isCompiled(policy) ? policy : await loadPolicy(policy, { encoder: options.encoder, baseDir: options.baseDir });
    if (compiled.concepts.length > 0 && compiled.dim !== options.encoder.dim) throw new RagdiffError('POLICY_INVALID', `policy concepts are ${compiled.dim} wide; the guard's encoder is ${options.encoder.dim} wide`);
    const guard = new SafetyGuard(compiled, options);
    guard.log({ door: 'policy', item: compiled.origin, action: 'load' });
    return guard;
  }

  /** The policy in force. */
  get policy(): SafetyPolicy {
    return this.current;
  }

  /** Version and content hash of the policy in force (what provenance records). */
  get stamp(): PolicyStamp {
    return { version: this.current.version, hash: this.current.hash };
  }

  /**
   * Replaces the policy. The new one is fully loaded and compiled first; when
   * that fails (POLICY_INVALID naming the field) the previous policy stays in
   * force and the rejection is logged.
   */
  async update(next: string | object | SafetyPolicy): Promise<SafetyPolicy> {
    let compiled: SafetyPolicy;
    try {
      compiled = isCompiled(next) ? next : await loadPolicy(next, { encoder: this.encoder, baseDir: this.baseDir });
      if (compiled.concepts.length > 0 && compiled.dim !== this.encoder.dim) throw new RagdiffError('POLICY_INVALID', `policy concepts are ${compiled.dim} wide; the guard's encoder is ${this.encoder.dim} wide`);
    } catch (e) {
      this.log({ door: 'policy', item: typeof next === 'string' ? next : 'object', action: 'reject', note: (e as Error).message.slice(0, 500) });
      throw e;
    }
    this.current = compiled;
    this.watch.reset();
    this.log({ door: 'policy', item: compiled.origin, action: 'load' });
    return compiled;
  }

  // ------------------------------------------------------------------ checks

  /** Concept rules on an L2-normalised image or text embedding at `door`. */
  checkEmbedding(embedding: Float32Array, door: SafetyDoor, item: string): SafetyDecision {
    const p = this.current;
    const { hits, closest } = conceptHits(p, embedding, door);
    return this.finish(decide(hits, closest), door, item, p);
  }

  /** The prompt door: the prompt embedded with the text encoder, scored against the concepts. */
  async checkPrompt(prompt: string): Promise<SafetyDecision> {
    if (typeof prompt !== 'string') throw typeError('INVALID_TYPE', 'prompt must be a string');
    const p = this.current;
    const fields = this.audit?.promptFields(prompt) ?? { item: 'prompt' };
    if (prompt.trim() === '' || p.concepts.every((c) => !c.doors.includes('prompt'))) return this.finish(decide([]), 'prompt', fields.item, p, fields.prompt);
    // One encoder call: the whole prompt, plus its short word runs when the policy asks (dilution defence).
    const windows = p.doc.prompt.windows > 0 ? promptWindows(prompt, p.doc.prompt.windows).filter((w) => w !== prompt.trim().toLowerCase()) : [];
    const embeddings = await this.encoder.embedText([prompt, ...windows]);
    const { hits, closest } = conceptHits(p, unit(embeddings[0]!), 'prompt');
    let nearest = closest;
    for (let i = 0; i < windows.length; i++) {
      const w = conceptHits(p, unit(embeddings[i + 1]!), 'prompt', true);
      for (const h of w.hits) if (!hits.some((x) => x.rule === h.rule)) hits.push(h);
      if (w.closest && (!nearest || w.closest.score > nearest.score)) nearest = w.closest;
    }
    hits.sort((a, b) => b.score - a.score);
    return this.finish(decide(hits, nearest), 'prompt', fields.item, p, fields.prompt);
  }

  /**
   * An encoded image (e.g. a generated PNG) embedded with the image encoder and
   * checked at `door`: the concepts (whose image anchors cover every orientation)
   * and the hash blocklist in all eight orientations.
   */
  async checkImage(bytes: Uint8Array, door: SafetyDoor, item: string): Promise<SafetyDecision> {
    const p = this.current;
    const size = this.encoder.imageSize ?? { width: 224, height: 224 };
    let pixels: RgbImage;
    let hashes: string[] = [];
    // The pipeline's own PNGs (8-bit RGB at the encoder's size) decode synchronously; anything else takes the gate's path.
    const own = decodeRgbPng(bytes, DEFAULT_MAX_PIXELS);
    if (own && own.width === size.width && own.height === size.height && Math.min(size.width, size.height) >= PHASH_SIZE) {
      pixels = own;
      if (p.doc.hashes.length > 0) hashes = orientationHashes(areaResize(own.rgb, own.width, own.height, PHASH_SIZE, PHASH_SIZE));
    } else {
      const c = await decodeCandidate(bytes, this.encoder); // pixels and the orientation hashes
      pixels = c.pixels;
      hashes = c.orientedHashes;
    }
    const [e] = await this.encoder.embedImages([pixels]);
    const { hits, closest } = conceptHits(p, unit(e!), door);
    hits.unshift(...hashHits(p, hashes));
    return this.finish(decide(hits, closest), door, item, p);
  }

  /** Sources seen at ingest with images close to a concept, most clustered first (poisoning report). */
  poisoningReport(): SourceReport[] {
    return this.watch.report();
  }

  // ------------------------------------------------------------------ doors

  /** Door 1, ingest (and the store's upload path): the store's screen hooks. */
  imageScreen(): ImageScreen {
    return {
      beforeEmbed: (c: ScreenCandidate): ScreenVerdict => {
        const p = this.current;
        const door = doorOf(c.purpose);
        const hits: RuleHit[] = [...hashHits(p, c.orientedHashes ?? c.phash.hash), ...(door === 'ingest' ? metaHits(p, c.meta) : [])];
        const d = this.finish(decide(hits), door, `sha256:${c.sha256}`, p, undefined, hits.length === 0);
        return d.action === 'block' ? { allow: false, reason: reasonOf(d, p) } : { allow: true };
      },
      afterEmbed: (c: ScreenCandidate & { embedding: Float32Array }): ScreenVerdict => {
        const p = this.current;
        const door = doorOf(c.purpose);
        const { hits, closest } = conceptHits(p, c.embedding, door);
        if (door === 'ingest' && p.doc.poisoning) {
          const hit = this.watch.check(p.doc.poisoning, c.meta.source ?? '', c.embedding, closest);
          if (hit) hits.push(hit);
        }
        const d = this.finish(decide(hits, closest), door, `sha256:${c.sha256}`, p);
        return d.action === 'block' ? { allow: false, reason: reasonOf(d, p) } : { allow: true };
      },
      // Synchronous, inside every query: the cheap rules on stored metadata (concepts run in referenceScreen, with the embedding).
      atRetrieval: (c) => {
        const p = this.current;
        const hits = [...hashHits(p, c.phash), ...metaHits(p, c)];
        if (hits.length === 0) return true;
        return this.finish(decide(hits), 'retrieval', c.id, p).action !== 'block';
      },
    };
  }

  /** Doors 2 and 3: every retrieved, pinned or uploaded reference, with the embedding retrieval computed. */
  referenceScreen(): ReferenceScreen {
    return (ref) => {
      const p = this.current;
      const door: SafetyDoor = ref.kind === 'upload' ? 'upload' : 'retrieval';
      const item = ref.id ?? `sha256:${ref.sha256}`;
      const { hits, closest } = conceptHits(p, ref.embedding, door);
      hits.unshift(...hashHits(p, ref.orientedHashes ?? ref.phash), ...(ref.kind === 'stored' ? metaHits(p, ref) : []));
      const d = this.finish(decide(hits, closest), door, item, p);
      return d.action === 'block' ? { allow: false, reason: reasonOf(d, p) } : { allow: true };
    };
  }

  /** Door 4: the prompt. */
  promptScreen(): PromptScreen {
    return async (prompt) => verdict(await this.checkPrompt(prompt), this.current);
  }

  /** Door 5: each generated image, embedded with the image encoder. */
  outputScreen(): OutputScreen {
    return async (png, info) => verdict(await this.checkImage(png, 'output', `output:seed${info.seed}#${info.index}`), this.current);
  }

  /** Every RagPipeline hook of this guard: `new RagPipeline(pipeline, guard.ragOptions())`. */
  ragOptions(): GuardRagOptions {
    return {
      screen: this.referenceScreen(),
      promptScreen: this.promptScreen(),
      outputScreen: this.outputScreen(),
      maxPerSource: () => this.current.doc.retrieval.maxPerSource,
      policyStamp: () => this.stamp,
    };
  }

  close(): void {
    this.audit?.close();
  }

  // ------------------------------------------------------------------ internals

  private finish(d: SafetyDecision, door: SafetyDoor, item: string, p: SafetyPolicy, prompt?: string, quiet = false): SafetyDecision {
    // beforeEmbed allows are not logged: the afterEmbed decision for the same image follows.
    if (!quiet || d.action !== 'allow') {
      this.log({ door, item, ...(d.rule ? { rule: d.rule } : {}), ...(d.score !== undefined ? { score: d.score } : {}), action: d.action, ...(prompt !== undefined ? { prompt } : {}) }, p);
    }
    return d;
  }

  private log(e: Omit<Parameters<AuditLog['record']>[0], 'policy' | 'version'>, p: SafetyPolicy = this.current): void {
    if (!this.audit) return;
    try {
      this.audit.record({ ...e, policy: p.hash, version: p.version });
    } catch {
      // A full disk must not turn into an unscreened request: the decision stands; the log is best effort.
    }
  }
}

function isCompiled(p: unknown): p is SafetyPolicy {
  return typeof p === 'object' && p !== null && typeof (p as SafetyPolicy).hash === 'string' && Array.isArray((p as SafetyPolicy).concepts) && 'doc' in (p as object);
}

function doorOf(purpose: ScreenCandidate['purpose']): SafetyDoor {
  return purpose === 'ingest' ? 'ingest' : 'upload';
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  if (!(s > 0) || !Number.isFinite(s)) throw new RagdiffError('EMBED_FAILED', 'the encoder returned an unusable embedding');
  const inv = 1 / Math.sqrt(s);
  return Float32Array.from(v, (x) => x * inv);
}

function verdict(d: SafetyDecision, p: SafetyPolicy): SafetyVerdict {
  if (d.action === 'block') return { allow: false, rule: d.rule!, score: d.score!, reason: reasonOf(d, p) };
  return d.action === 'flag' ? { allow: true, flagged: d.hits.map((h) => ({ rule: h.rule, score: h.score })) } : { allow: true };
}
