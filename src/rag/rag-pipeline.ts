/**
 * Retrieval-augmented generation as one call. The flow runs one way:
 *
 *   request → validate → retrieve (or take the user's references) → screen
 *     → plan (mode → guidance branches + per-step weights, optional start latent)
 *     → generate (the pipeline's workers) → provenance on every image
 *
 * The pipeline and the store stay unaware of each other: this layer reads the
 * store through {@link ReferenceSource} and hands the pipeline only guidance
 * branches, init images and a provenance record.
 */
import { AbortError, RagdiffError, rangeError, typeError } from '../errors.js';
import { assertInteger, assertPlainObject, assertString } from '../validate.js';
import { createScheduler, type DiffusersSchedulerConfig } from '../scheduler/index.js';
import { Pipeline, type GenerateRequest, type PipelineInfo, type PipelineOptions } from '../pipeline/index.js';
import { bundleRetrieval } from './bundle-retrieval.js';
import { buildPlan, TOKEN_MODES, type Conditioning } from './modes/index.js';
import { PROMPT } from './modes/plan.js';
import { normalizeRetrieval, supportedModes, type BundleRetrieval, type NormalizedRetrieval } from './options.js';
import { provenanceRecord } from './provenance.js';
import { gatherReferences, type Candidate } from './references.js';
import { reflectiveRerank } from './reflective.js';
import { capPerSource, screenReferences, type OutputScreen, type PolicyStamp, type PromptScreen, type ReferenceScreen, type SafetyVerdict } from './screen.js';
import type { RagRequest, RagResult, ReferenceSource, ReferenceUse, ReferenceUsage, RetrievalStats } from './types.js';

/**
 * The safety hooks, all optional: what `SafetyGuard.ragOptions()` returns, and
 * what every surface (library, CLI, server) hands a RagPipeline unchanged — the
 * server only wraps each to count its decisions.
 */
export interface RagSafety {
  /** Checks every reference before it reaches a model (the safety module's hook). */
  screen?: ReferenceScreen;
  /** Checks the prompt before retrieval and generation; a refusal is PROMPT_BLOCKED naming the rule. */
  promptScreen?: PromptScreen;
  /** Checks every generated image; refused images are left out of the result (`result.blocked`). */
  outputScreen?: OutputScreen;
  /** At most this many references from one source (pinned ones count and always stay). A function is read per request. */
  maxPerSource?: number | (() => number | undefined);
  /** The safety policy in force, read per request and recorded in provenance. */
  policyStamp?: () => PolicyStamp | undefined;
}

export type RagPipelineOptions = RagSafety;

const SAFETY_HOOKS = ['screen', 'promptScreen', 'outputScreen', 'maxPerSource', 'policyStamp'] as const;

/** A generated image the output screen refused (the image itself is not returned). */
export interface BlockedOutput {
  seed: number;
  /** Position in the batch. */
  index: number;
  rule: string;
  score: number;
}

type SearchableStore = ReferenceSource & { embedText(text: string): Promise<Float32Array> };

/** Relevance weights: 1 for the best score, exp((s − s_max) / τ) below it. */
const SCORE_TEMPERATURE = 0.05;

function weightsFor(refs: readonly Candidate[], how: 'uniform' | 'score'): number[] {
  if (how === 'uniform' || refs.length === 0) return refs.map(() => 1);
  const top = Math.max(...refs.map((r) => r.score));
  return refs.map((r) => Math.exp((r.score - top) / SCORE_TEMPERATURE));
}

export class RagPipeline {
  private readonly bundle: BundleRetrieval;

  constructor(readonly pipeline: Pipeline, private readonly options: RagPipelineOptions = {}) {
    if (!(pipeline instanceof Pipeline)) throw typeError('INVALID_TYPE', 'RagPipeline needs a loaded Pipeline');
    assertPlainObject('options', options);
    for (const f of ['screen', 'promptScreen', 'outputScreen', 'policyStamp'] as const) {
      if (options[f] !== undefined && typeof options[f] !== 'function') throw typeError('INVALID_TYPE', `options.${f} must be a function`);
    }
    if (options.maxPerSource !== undefined && typeof options.maxPerSource !== 'function') assertInteger('options.maxPerSource', options.maxPerSource, 1, 10_000);
    this.bundle = bundleRetrieval(pipeline.info);
  }

  /** Loads the bundle at `dir` (see Pipeline.load) for retrieval-augmented generation. */
  static async load(dir: string, options: PipelineOptions & RagPipelineOptions = {}): Promise<RagPipeline> {
    const { screen, promptScreen, outputScreen, maxPerSource, policyStamp, ...pipelineOptions } = options;
    const pipeline = await Pipeline.load(dir, pipelineOptions);
    try {
      return new RagPipeline(pipeline, { screen, promptScreen, outputScreen, maxPerSource, policyStamp });
    } catch (e) {
      await pipeline.close();
      throw e;
    }
  }

  /** The safety hooks this generator enforces (a copy: the server wraps them to count decisions). */
  get safety(): RagSafety {
    const out: RagSafety = {};
    for (const k of SAFETY_HOOKS) if (this.options[k] !== undefined) (out as Record<string, unknown>)[k] = this.options[k];
    return out;
  }

  get info(): PipelineInfo {
    return this.pipeline.info;
  }

  /** The retrieval modes this bundle supports. */
  get modes(): string[] {
    return supportedModes(this.bundle);
  }

  close(): Promise<void> {
    return this.pipeline.close();
  }

  async generate(request: RagRequest): Promise<RagResult> {
    assertPlainObject('request', request);
    const { retrieval, ...rest } = request as RagRequest & Record<string, unknown>;
    for (const owned of ['guidance', 'initImages', 'provenance']) {
      if (owned in rest) throw rangeError('UNKNOWN_OPTION', `${owned} is not a RagPipeline.generate option (retrieval sets it); use pipeline.generate for explicit ${owned}`);
    }
    if (typeof rest.prompt === 'string') await this.screenPrompt(rest.prompt);
    const policy = this.options.policyStamp?.();
    if (retrieval === undefined) {
      const r = await this.pipeline.generate({ ...(rest as GenerateRequest), ...(policy ? { provenance: { policy } } : {}) });
      return this.screenOutputs({ ...r, images: r.images.map((im) => ({ ...im, references: [] })), references: [], ...(policy ? { policy } : {}) });
    }
    const started = performance.now();
    assertString('prompt', rest.prompt);
    const guidanceScale = rest.guidanceScale ?? this.info.defaults.guidanceScale;
    const r = normalizeRetrieval(retrieval, rest.prompt, guidanceScale, this.bundle);
    if (r.referenceInit && rest.initImage !== undefined) throw rangeError('INVALID_VALUE', 'initImage cannot be combined with retrieval reference-init');
    // A text query steers retrieval (and, with queryInFirstSlot, conditions the model): it passes the prompt door too.
    if ('text' in r.query && r.queryKind === 'text') await this.screenPrompt(r.query.text);
    if (rest.signal?.aborted) throw new AbortError('generation aborted before it started', { cause: rest.signal.reason });
    const store = r.store as SearchableStore;
    if (typeof store.embedText !== 'function') throw typeError('INVALID_TYPE', 'retrieval.store must be able to embed text (embedText)');
    this.checkEncoder(r, store);

    const stats: RetrievalStats = {
      mode: r.mode, k: r.k, candidates: 0, screened: [], queryMs: 0, searchMs: 0, uploadsMs: 0, screenMs: 0, draftMs: 0, rerankMs: 0, planMs: 0, totalMs: 0,
    };
    const want = r.k - r.references.length;
    const storedPinned = r.references.filter((x) => 'id' in x).length;
    let skipped: string | undefined;
    if (store.size === 0) {
      if (r.references.length === 0) skipped = `the store ${store.dir} has no active images; generated without retrieval`;
    } else if (want > store.size - storedPinned) {
      throw rangeError('OUT_OF_RANGE', `retrieval.k = ${r.k} asks for ${want} retrieved references but the store has ${store.size - storedPinned} more active images`);
    }

    let chosen: Candidate[] = [];
    let queryVector: Float32Array | null = null;
    if (!skipped) {
      // With a screen or a source cap, look deeper so refused references are replaced (same top results when none is refused).
      const maxPerSource = typeof this.options.maxPerSource === 'function' ? this.options.maxPerSource() : this.options.maxPerSource;
      const deeper = this.options.screen || maxPerSource !== undefined ? want * 3 : want;
      const gathered = await gatherReferences(r, r.reflective ? Math.max(deeper, r.reflective.candidates) : deeper, store);
      Object.assign(stats, gathered.timings);
      queryVector = gathered.queryVector;
      if (r.queryInFirstSlot && this.options.screen) {
        // The query's own embedding enters neighbour slot 0: it is screened like an upload.
        const q = { kind: 'upload' as const, sha256: 'query', score: 1, pinned: true, source: 'query', licence: '', attribution: '', name: 'query', tags: [], embedding: queryVector, bytes: () => new Uint8Array(0) };
        await screenReferences(this.options.screen, [q]);
      }
      stats.candidates = gathered.retrieved.length;
      let t0 = performance.now();
      const pinned = (await screenReferences(this.options.screen, gathered.pinned)).kept;
      const screened = await screenReferences(this.options.screen, gathered.retrieved);
      const capped = capPerSource(pinned, screened.kept, maxPerSource);
      stats.screened = [...screened.refused, ...capped.refused];
      stats.screenMs = performance.now() - t0;
      let retrieved = capped.kept;
      if (r.reflective && retrieved.length > 0 && want > 0) {
        t0 = performance.now();
        const draft = await this.draftEmbedding(rest, r, store);
        stats.draftMs = performance.now() - t0;
        t0 = performance.now();
        retrieved = reflectiveRerank(retrieved, draft, r.reflective.lambda, want);
        stats.rerankMs = performance.now() - t0;
      } else {
        retrieved = retrieved.slice(0, Math.max(0, want));
      }
      chosen = [...pinned, ...retrieved];
      if (chosen.length === 0) skipped = 'no reference passed the filters and the screen; generated without retrieval';
    }

    // Retrieve-only: a stored image that already answers the query well enough.
    let answer: RagResult['retrieved'];
    if (r.retrieveOnly && chosen.length > 0) {
      const best = chosen.filter((c) => c.kind === 'stored').sort((a, b) => b.score - a.score)[0];
      if (best && best.score >= r.retrieveOnly.above) {
        answer = { png: Buffer.from(best.bytes()), reference: { ...this.describe(best, 1, [{ as: 'retrieved-answer' }], 1) } };
        if (!r.retrieveOnly.alsoGenerate) {
          stats.totalMs = performance.now() - started;
          return { images: [], references: [answer.reference], retrieved: answer, latents: [], ...(policy ? { policy } : {}), stats: { retrieval: stats } };
        }
      }
    }

    const t0 = performance.now();
    const planned = this.plan(rest, r, chosen, skipped, queryVector);
    stats.planMs = performance.now() - t0;
    if (skipped) stats.skipped = skipped;
    const provenance = provenanceRecord(r, store, planned.uses, skipped, policy);
    stats.totalMs = performance.now() - started;

    // The text scale the plan uses is the one the parameters record.
    const result = await this.pipeline.generate({ ...(rest as GenerateRequest), guidanceScale: r.textScale, ...planned.request, provenance: provenance as unknown as Record<string, unknown> });
    return this.screenOutputs({
      ...result,
      images: result.images.map((im) => ({ ...im, references: planned.uses })),
      references: planned.uses,
      ...(answer ? { retrieved: answer } : {}),
      ...(policy ? { policy } : {}),
      stats: { ...result.stats, retrieval: stats },
    });
  }

  /** The prompt door: a refused prompt is PROMPT_BLOCKED before any retrieval or model call. A screen that throws refuses. */
  private async screenPrompt(prompt: string): Promise<void> {
    if (!this.options.promptScreen) return;
    let v: SafetyVerdict;
    try {
      v = await this.options.promptScreen(prompt);
    } catch (e) {
      throw new RagdiffError('PROMPT_BLOCKED', `the prompt screen failed, so the prompt is refused: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    if (!v.allow) throw Object.assign(new RagdiffError('PROMPT_BLOCKED', `the prompt was refused by rule ${v.rule} (score ${v.score.toFixed(4)}): ${v.reason}`), { rule: v.rule, score: v.score });
  }

  /** The output door: refused images (and the latents, which would decode to them) are left out; a screen that throws refuses. */
  private async screenOutputs(result: RagResult): Promise<RagResult> {
    if (!this.options.outputScreen) return result;
    const t0 = performance.now();
    const kept: RagResult['images'] = [];
    const blocked: BlockedOutput[] = [];
    for (const [index, im] of result.images.entries()) {
      let v: SafetyVerdict;
      try {
        v = await this.options.outputScreen(im.png, { seed: im.seed, index });
      } catch (e) {
        v = { allow: false, rule: 'screen-error', score: 1, reason: (e as Error)?.message ?? String(e) };
      }
      if (v.allow) kept.push(im);
      else blocked.push({ seed: im.seed, index, rule: v.rule, score: v.score });
    }
    const out: RagResult = { ...result, images: kept, blocked, stats: { ...result.stats, outputScreenMs: performance.now() - t0 } };
    if (blocked.length > 0) out.latents = [];
    return out;
  }

  /** Token modes read the store's embeddings through the bundle's image_proj: they must come from the same encoder. */
  private checkEncoder(r: NormalizedRetrieval, store: ReferenceSource): void {
    if (!TOKEN_MODES.includes(r.mode)) return;
    const st = store.stats();
    if (st.dim !== this.bundle.embedDim) {
      throw new RagdiffError('ENCODER_MISMATCH', `the store ${store.dir} holds ${st.dim}-wide embeddings (${st.encoderId}); this bundle's image_proj takes ${this.bundle.embedDim}-wide ones (${this.bundle.encoderId ?? 'no image encoder in the bundle'})`);
    }
    if (this.bundle.encoderId && st.encoderId !== this.bundle.encoderId) {
      throw new RagdiffError('ENCODER_MISMATCH', `the store ${store.dir} was embedded by ${st.encoderId}; this bundle's image_proj was trained on ${this.bundle.encoderId}. Build the store with the bundle's encoders (loadClipEncoders("${this.info.dir}"))`);
    }
  }

  /** A few steps without retrieval, embedded by the store's encoder: what the generator already makes. */
  private async draftEmbedding(rest: Omit<RagRequest, 'retrieval'>, r: NormalizedRetrieval, store: ReferenceSource): Promise<Float32Array> {
    const draft = await this.pipeline.generate({
      prompt: rest.prompt, negativePrompt: rest.negativePrompt, steps: r.reflective!.draftSteps, guidanceScale: r.textScale,
      seed: rest.seed ?? 0, sampler: rest.sampler, karras: rest.karras, signal: rest.signal,
    });
    return (await store.embedReference(draft.images[0]!.png, { purpose: 'query' })).embedding;
  }

  /** Mode → guidance plan, start latent and the record of how each reference was used. */
  private plan(rest: Omit<RagRequest, 'retrieval'>, r: NormalizedRetrieval, chosen: Candidate[], skipped: string | undefined, queryVector: Float32Array | null): { request: Partial<GenerateRequest>; uses: ReferenceUse[] } {
    const info = this.info;
    const steps = rest.steps ?? info.defaults.steps;
    const usage = chosen.map((): ReferenceUsage[] => []);
    const tokenShare = chosen.map(() => 0);
    const initShare = chosen.map(() => 0);
    const attnShare = chosen.map(() => 0);
    const tokenMode = TOKEN_MODES.includes(r.mode) && !skipped;

    const neighbours: Conditioning = { embeds: null, weights: null };
    if (tokenMode) {
      const S = this.bundle.slots;
      const E = this.bundle.embedDim;
      neighbours.embeds = new Float32Array(S * E);
      neighbours.weights = new Float32Array(S);
      let slot = 0;
      if (r.queryInFirstSlot) {
        // RDM's sample_with_query: the query's own embedding leads the neighbours.
        neighbours.embeds.set(queryVector!, 0);
        neighbours.weights[0] = 1;
        slot = 1;
      }
      const w = weightsFor(chosen, r.neighbourWeighting);
      const total = w.reduce((a, b) => a + b, 0);
      chosen.forEach((c, j) => {
        neighbours.embeds!.set(c.embedding, (slot + j) * E);
        neighbours.weights![slot + j] = w[j]!;
        usage[j]!.push({ as: 'token-slot', slot: slot + j, weight: w[j]! });
        tokenShare[j] = w[j]! / total;
      });
    }

    let initImages: GenerateRequest['initImages'];
    if (r.referenceInit && !skipped && chosen.length > 0) {
      const blendRefs = chosen.slice(0, r.referenceInit.blend);
      const weights = this.blendWeights(blendRefs, r.neighbourWeighting);
      initImages = { images: blendRefs.map((c) => c.bytes()), weights };
      blendRefs.forEach((_, j) => {
        usage[j]!.push({ as: 'init-latent', weight: weights[j]!, strength: r.referenceInit!.strength });
        initShare[j] = weights[j]!;
      });
    }

    let referenceAttention: GenerateRequest['referenceAttention'];
    if (r.referenceAttention && !skipped && chosen.length > 0) {
      const refs = chosen.slice(0, r.referenceAttention.blend);
      const weights = this.blendWeights(refs, r.neighbourWeighting);
      referenceAttention = { images: refs.map((c) => c.bytes()), weights, fidelity: r.referenceAttention.fidelity };
      refs.forEach((_, j) => {
        usage[j]!.push({ as: 'attention', weight: weights[j]!, fidelity: r.referenceAttention!.fidelity });
        attnShare[j] = weights[j]!;
      });
    }

    // The schedule's model calls (PNDM makes more than steps): the plan has one weight row per call.
    const sched = createScheduler(info.schedulerConfig as unknown as DiffusersSchedulerConfig, { sampler: rest.sampler ?? info.defaults.sampler, ...(rest.karras !== undefined ? { useKarrasSigmas: rest.karras } : {}) });
    sched.setTimesteps(steps);
    const timesteps = r.mode === 'mixture' ? Array.from(sched.timesteps) : new Array<number>(sched.timesteps.length).fill(0);
    const numTrain = r.mode === 'mixture' ? Number(info.schedulerConfig.num_train_timesteps ?? 1000) : 1000;
    const mode = skipped ? 'reference-init' : r.mode; // skipped: the text-only plan (cfg)
    let plan = buildPlan(mode, { timesteps, numTrainTimesteps: numTrain, textScale: r.textScale, retrievalScale: r.retrievalScale, neighbours }, { mixture: r.mixture, textShare: r.textShare });
    // LCM (guidance embedded) and Turbo at a scale ≤ 1 run the conditional branch alone, as their pipelines do.
    if (mode === 'reference-init' && (info.guidance === 'embedded' || (info.guidance === 'optional' && r.textScale <= 1))) {
      plan = { ...plan, branches: [{ text: PROMPT, label: 'cond' }], weights: new Float32Array(timesteps.length).fill(1) };
    }

    // Influence: the mean of a reference's shares over the ways references entered (tokens, start latent, attention).
    const ways = [tokenMode ? tokenShare : null, initImages ? initShare : null, referenceAttention ? attnShare : null].filter((x): x is number[] => x !== null);
    const uses = chosen
      .map((c, j) => ({ c, j, influence: ways.length ? ways.reduce((a, share) => a + share[j]!, 0) / ways.length : 0 }))
      .filter((x) => usage[x.j]!.length > 0)
      .sort((a, b) => b.influence - a.influence || a.j - b.j)
      .map((x, i) => this.describe(x.c, i + 1, usage[x.j]!, x.influence));
    // Reference attention joins every branch that carries the prompt; the unconditional text stays plain
    // (as diffusers' reference-only pipeline keeps its uncond pass), so guidance amplifies the reference
    // instead of cancelling it (measured: tools/tiny_emoji/probe_reference.py, arms refattn vs refcond).
    // With branches 'retrieval' only the neighbour-carrying branches attend, so s_r scales the reference too.
    const onlyRetrieval = r.referenceAttention?.branches === 'retrieval' && plan.branches.some((b) => b.neighbourEmbeds);
    const branches = referenceAttention ? plan.branches.map((b) => ({ ...b, reference: onlyRetrieval ? !!b.neighbourEmbeds : b.text === PROMPT })) : plan.branches;
    const request: Partial<GenerateRequest> = { guidance: { branches, weights: plan.weights, label: plan.label + (referenceAttention ? ` refattn=${referenceAttention.fidelity}${onlyRetrieval ? ' (retrieval branch)' : ''}` : '') } };
    if (initImages) {
      request.initImages = initImages;
      request.strength = r.referenceInit!.strength;
    }
    if (referenceAttention) request.referenceAttention = referenceAttention;
    return { request, uses };
  }

  /** Blend weights summing exactly to one (uniform, or by relevance). */
  private blendWeights(refs: readonly Candidate[], how: 'uniform' | 'score'): number[] {
    const w = weightsFor(refs, how);
    const total = w.reduce((a, b) => a + b, 0);
    const weights = w.map((x) => x / total);
    weights[weights.length - 1] = 1 - weights.slice(0, -1).reduce((a, b) => a + b, 0);
    return weights;
  }

  private describe(c: Candidate, rank: number, usage: ReferenceUsage[], influence: number): ReferenceUse {
    return {
      kind: c.kind, ...(c.id ? { id: c.id } : {}), sha256: c.sha256, score: c.score, rank, pinned: c.pinned, source: c.source,
      licence: c.licence, attribution: c.attribution, name: c.name, usage, influence,
    };
  }
}
