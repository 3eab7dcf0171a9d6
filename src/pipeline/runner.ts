/**
 * The model side of a generation: owns the ONNX sessions of one bundle and runs
 * one job at a time through the stages diffusers' pipelines have — encode prompt
 * (stages/encode-prompt.ts) → prepare latents (stages/latents.ts) → denoise
 * (stages/denoise.ts, conditioning.ts) → decode (stages/decode.ts). What differs
 * between SD 1.x/2.x, SDXL, Turbo, LCM and ragdiff's own layout is the family
 * adapter (families/), read by the stages. It runs inside a worker thread
 * (worker.ts) because onnxruntime-node's `run` blocks its thread; it is plain
 * async code, so benchmarks and tests can also drive it directly.
 */
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { AbortError, RagdiffError, rangeError } from '../errors.js';
import { openSession, expectIO, type OpenedSession } from '../models/session.js';
import { createScheduler, type DiffusersSchedulerConfig, type Scheduler } from '../scheduler/index.js';
import { NoiseGenerator } from '../rng.js';
import type { BundleManifest } from './bundle.js';
import type { GuidanceBranch } from './guidance.js';
import { FloatBoundary, floatTypeOf } from './tensor-io.js';
import { dim, outputName, tensorMeta, type Timed } from './session-meta.js';
import { FAMILIES, type FamilyAdapter } from './families/index.js';
import { checkUnetInputs, hashBundle, resolveInfo } from './model-info.js';
import { describeTextEncoder, encodePrompts, type TextEncoder } from './stages/encode-prompt.js';
import { encodeBlend, prepareLatents, type VaeEncoder } from './stages/latents.js';
import { buildConditioning, extraWidth } from './stages/conditioning.js';
import { denoise } from './stages/denoise.js';
import { decodeLatents } from './stages/decode.js';
import type { Job, JobHooks, JobResult, JobTimings, ModelInfo, RunnerOptions } from './job.js';

export type { RunnerOptions, ModelInfo, Job, Stage, JobHooks, JobTimings, JobResult } from './job.js';
export { hashBundle } from './model-info.js';

interface Sessions {
  textEncoders: TextEncoder[];
  unet: OpenedSession;
  unetOut: string;
  vaeDecoder: { session: OpenedSession; out: string };
  vaeEncoder: VaeEncoder | null;
  imageProj: { session: OpenedSession; out: string } | null;
  unetRefAttn: OpenedSession | null;
}

export class ModelRunner {
  private constructor(
    readonly info: ModelInfo,
    private readonly family: FamilyAdapter,
    private readonly s: Sessions,
    private readonly extras: { name: FamilyAdapter['unetExtras'][number]; width: number }[],
  ) {}

  static async open(manifest: BundleManifest, options: RunnerOptions = {}): Promise<ModelRunner> {
    const so = { executionProviders: options.executionProviders, intraOpNumThreads: options.threads, allowSpinning: options.spinning ?? false, onWarning: options.onWarning };
    const family = FAMILIES[manifest.family];
    const opened: OpenedSession[] = [];
    try {
      const open = async (p: string) => {
        const s = await openSession(p, so);
        opened.push(s);
        return s;
      };
      const rd = manifest.ragdiff ?? {};
      const unet = await open(manifest.files.unet);
      checkUnetInputs(manifest, unet);
      const ehsWidth = dim(tensorMeta(unet, 'encoder_hidden_states', 'input').shape[2]) ?? rd.token_width;
      const textEncoders: TextEncoder[] = [];
      for (const spec of family.textEncoders) {
        const path = spec.component === 'text_encoder' ? manifest.files.textEncoder : manifest.files.textEncoder2!;
        const single = family.textEncoders.length === 1;
        const te = describeTextEncoder(await open(path), spec, { length: rd.text_max_length, width: single ? ehsWidth : undefined });
        // The published config says the width too: a config from another model than the graph is a mismatch.
        const cfg = spec.component === 'text_encoder' ? manifest.configs.textEncoder : manifest.configs.textEncoder2;
        if (typeof cfg.hidden_size === 'number' && cfg.hidden_size !== te.width) {
          throw new RagdiffError('MODEL_IO_MISMATCH', `${join(manifest.dir, spec.component, 'config.json')}: hidden_size ${cfg.hidden_size} differs from ${path}'s width ${te.width}`);
        }
        textEncoders.push(te);
      }
      const dec = await open(manifest.files.vaeDecoder);
      const enc = manifest.files.vaeEncoder ? await open(manifest.files.vaeEncoder) : null;
      const proj = manifest.files.imageProj ? await open(manifest.files.imageProj) : null;
      const refAttn = manifest.files.unetReferenceAttention ? await open(manifest.files.unetReferenceAttention) : null;
      if (refAttn) expectIO(refAttn, ['sample', 'timestep', 'encoder_hidden_states', 'ref_sample', 'ref_weight', ...family.unetExtras], []);
      expectIO(dec, ['latent_sample'], []);
      if (enc) expectIO(enc, ['sample'], []);
      if (proj) expectIO(proj, ['image_embeds'], []);
      const projOut = proj ? outputName(proj, 'image_prompt_embeds') : '';

      const info = resolveInfo(manifest, textEncoders, unet, dec, enc);
      if (proj && info.neighbourSlots > 0) {
        const inMeta = tensorMeta(proj, 'image_embeds', 'input');
        const outMeta = tensorMeta(proj, projOut, 'output');
        info.embedDim = dim(inMeta.shape[2]) ?? (manifest.ragdiff as { embed_dim?: number } | null)?.embed_dim ?? 0;
        const k = dim(inMeta.shape[1]);
        const w = dim(outMeta.shape[2]);
        if ((k !== undefined && k !== info.neighbourSlots) || (w !== undefined && w !== info.tokenWidth)) {
          throw new RagdiffError('MODEL_IO_MISMATCH', `${proj.path}: maps [${inMeta.shape.join(', ')}] to [${outMeta.shape.join(', ')}], expected ${info.neighbourSlots} neighbours to width ${info.tokenWidth}`);
        }
        floatTypeOf(inMeta.type, `${proj.path}: image_embeds`);
        floatTypeOf(outMeta.type, `${proj.path}: ${projOut}`);
      }
      const extras = family.unetExtras.map((name) => ({ name, width: extraWidth(unet, name, info, manifest.configs.unet).width }));
      info.providers = unet.providers;
      info.referenceAttention = refAttn !== null && enc !== null;
      info.hash = hashBundle(manifest);
      return new ModelRunner(info, family, {
        textEncoders,
        unet,
        unetOut: outputName(unet, 'out_sample'),
        vaeDecoder: { session: dec, out: outputName(dec, 'sample') },
        vaeEncoder: enc ? { session: enc, out: outputName(enc, 'latent_sample') } : null,
        imageProj: proj && info.embedDim > 0 ? { session: proj, out: projOut } : null,
        unetRefAttn: info.referenceAttention ? refAttn : null,
      }, extras);
    } catch (e) {
      await Promise.allSettled(opened.map((s) => s.session.release()));
      throw e;
    }
  }

  /**
   * One scheduler per (sampler, karras), built on first use and reused by
   * later jobs: setTimesteps resets its step index and solver history, and its
   * own noise generator is never drawn from (the loop always passes per-image
   * noise to stochastic steps), so reuse gives the same bytes as a fresh one.
   */
  private readonly schedulers = new Map<string, Scheduler>();

  private scheduler(job: Job): Scheduler {
    const key = `${job.sampler}|${job.karras ?? ''}`;
    let s = this.schedulers.get(key);
    if (!s) {
      s = createScheduler(this.info.schedulerConfig as unknown as DiffusersSchedulerConfig, {
        sampler: job.sampler,
        ...(job.karras !== undefined ? { useKarrasSigmas: job.karras } : {}),
      });
      this.schedulers.set(key, s);
    }
    return s;
  }

  async close(): Promise<void> {
    const { textEncoders, unet, vaeDecoder, vaeEncoder, imageProj, unetRefAttn } = this.s;
    const all = [...textEncoders.map((t) => t.session), unet, vaeDecoder.session, vaeEncoder?.session ?? null, imageProj?.session ?? null, unetRefAttn]
      .filter((s): s is OpenedSession => s !== null);
    await Promise.allSettled(all.map((s) => s.session.release()));
  }

  /** Branches whose neighbourEmbeds are replaced by their image_proj tokens (one batched call for all). */
  private async projectNeighbours(branches: readonly GuidanceBranch[], timed: Timed): Promise<GuidanceBranch[]> {
    const todo = branches.map((b, i) => (b.neighbourEmbeds ? i : -1)).filter((i) => i >= 0);
    if (todo.length === 0) return [...branches];
    const proj = this.s.imageProj;
    if (!proj) throw new RagdiffError('UNSUPPORTED', `${this.info.dir} has no image_proj model; neighbourEmbeds cannot be used`);
    const { neighbourSlots: S, embedDim: E, tokenWidth: W } = this.info;
    const input = new FloatBoundary(floatTypeOf(tensorMeta(proj.session, 'image_embeds', 'input').type, proj.session.path), [todo.length, S, E]);
    todo.forEach((b, j) => input.data.set(branches[b]!.neighbourEmbeds!, j * S * E));
    const output = new FloatBoundary(floatTypeOf(tensorMeta(proj.session, proj.out, 'output').type, proj.session.path), [todo.length, S, W]);
    await timed(proj.session, { image_embeds: input.toModel() }, { [proj.out]: output.tensor });
    output.fromModel();
    return branches.map((b, i) => {
      const j = todo.indexOf(i);
      return j < 0 ? b : { ...b, neighbours: output.data.subarray(j * S * W, (j + 1) * S * W), neighbourEmbeds: null };
    });
  }

  async run(job: Job, hooks: JobHooks = {}): Promise<JobResult> {
    const started = performance.now();
    const info = this.info;
    const timings: JobTimings = { textEncodeMs: 0, imageEncodeMs: 0, denoiseMs: 0, unetMs: 0, samplerMs: 0, vaeDecodeMs: 0, toRgbMs: 0, pngMs: 0, ortMs: 0, totalMs: 0 };
    const timed: Timed = async (session, feeds, fetches) => {
      if (hooks.aborted?.()) throw new AbortError('generation aborted');
      const t0 = performance.now();
      try {
        await session.session.run(feeds, fetches);
      } catch (e) {
        throw new RagdiffError('MODEL_RUN_FAILED', `${session.path}: ${String((e as Error)?.message ?? e).split('\n')[0]}`, { cause: e });
      }
      const ms = performance.now() - t0;
      timings.ortMs += ms;
      return ms;
    };

    const batch = job.seeds.length;
    const nb = job.plan.branches.length;
    const latentSize = info.latent.channels * info.latent.height * info.latent.width;
    if (info.maxSteps > 0 && job.steps > info.maxSteps) {
      throw rangeError('OUT_OF_RANGE', `steps ${job.steps} is more than a ${info.family} model is distilled for (1..${info.maxSteps})`);
    }
    const scheduler = this.scheduler(job);
    scheduler.setTimesteps(job.steps, { sampleLength: batch * latentSize });
    if (job.plan.weights.length !== scheduler.timesteps.length * nb) {
      throw new RagdiffError('INTERNAL', `guidance weights cover ${job.plan.weights.length / nb} steps, the schedule has ${scheduler.timesteps.length}`);
    }
    const ra = job.referenceAttention;
    const attends = ra !== undefined && ra.branchMask.some((m) => m !== 0);
    if (attends) {
      if (!this.s.unetRefAttn) throw new RagdiffError('UNSUPPORTED', `${info.dir} declares no reference-attention UNet (ragdiff.variants.reference_attention)`);
      if (ra.branchMask.length !== nb) throw new RagdiffError('INTERNAL', `referenceAttention.branchMask has ${ra.branchMask.length} entries for ${nb} branches`);
    }

    // ---- 1. encode prompt
    hooks.progress?.(0, 1, 'encode-text');
    let t0 = performance.now();
    const texts = this.family.textEncoders.map((_, e) => (e === 0 ? job.texts : job.texts2 ?? job.texts));
    const prompts = await encodePrompts(timed, this.s.textEncoders, texts, info.tokenWidth, job.zeroTexts);
    timings.textEncodeMs = performance.now() - t0;
    const branches = await this.projectNeighbours(job.plan.branches, timed);
    const ehsWidth = (prompts.sequence + info.neighbourSlots) * info.tokenWidth;
    const ehs = new Float32Array(nb * batch * ehsWidth);
    const extras = buildConditioning(info, job, branches, prompts, ehs, this.extras);
    const conditioning = [{ name: 'encoder_hidden_states', width: ehsWidth, data: ehs }, ...extras];

    // ---- 2. prepare latents
    const latent = new Float32Array(batch * latentSize);
    const noise = new Float32Array(batch * latentSize);
    const generators = job.seeds.map((s) => new NoiseGenerator(s));
    const fillNoise = (out: Float32Array) => generators.forEach((g, i) => g.fillNormal(out.subarray(i * latentSize, (i + 1) * latentSize)));
    const lat = { timed, info, vae: this.s.vaeEncoder, hooks, timings };
    const { startIndex } = await prepareLatents(lat, job, scheduler, latent, noise, fillNoise);
    let reference: { session: OpenedSession; x0: Float32Array } | null = null;
    if (attends) {
      const t1 = performance.now();
      reference = { session: this.s.unetRefAttn!, x0: await encodeBlend(timed, info, this.s.vaeEncoder, ra.chw, ra.weights) };
      timings.imageEncodeMs += performance.now() - t1;
    }

    // ---- 3. denoise
    const d = await denoise(job, {
      timed, info, hooks, timings, unet: this.s.unet, unetOut: this.s.unetOut, reference, scheduler, conditioning,
      buffers: { latent, noise }, fillNoise, startIndex,
    });

    // ---- 4. decode
    t0 = performance.now();
    const images = await decodeLatents({ timed, info, hooks, timings }, this.s.vaeDecoder, job, latent);
    timings.totalMs = performance.now() - started;
    const { height: H, width: W } = info.image;
    return { images, width: W, height: H, nfe: d.nfe, branches: nb, stepsRun: d.stepsRun, timings, ...(d.trajectory ? { trajectory: d.trajectory } : {}) };
  }
}
