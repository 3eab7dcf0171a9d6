/**
 * `ragdiff convert reference-attention` as an API: one UNet file in, its reference-attention
 * variant out, weights shared with the source (external data by reference, hard-linked into the
 * output directory when it differs), written to a temporary name and renamed at the end so a
 * killed or failed conversion leaves nothing half-written.
 */
import { existsSync, linkSync, mkdirSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { RagdiffError } from '../errors.js';
import { externalData, readOnnxModel, shareExternalData, writeOnnxModel } from './onnx-model.js';
import { type ReferenceAttentionOptions, referenceAttentionGraph } from './reference-attention.js';
import { imageProjGraph, ipAdapterGraph } from './ip-adapter.js';
import { openSafetensors } from './safetensors.js';

export interface ConvertUnetOptions extends ReferenceAttentionOptions {
  /** The plain UNet (model.onnx of an optimum export, or a single-file model). */
  unet: string;
  /** The converted model's path; its directory must be on the source's filesystem. */
  out: string;
  /** A directory the output must not be inside of (the CLI passes the source bundle). */
  forbidInside?: string;
}

export interface ConvertUnetResult {
  out: string;
  selfAttentionBlocks: number;
  heads: number[];
}

/** Refuses an output path inside `bundle` (lexically or through symlinks of its existing parents). */
export function assertOutsideBundle(out: string, bundle: string): void {
  if (!existsSync(bundle)) return;
  let probe = resolve(out);
  const rest: string[] = [];
  while (!existsSync(probe)) { rest.unshift(basename(probe)); probe = dirname(probe); }
  const real = join(realpathSync(probe), ...rest);
  if (inside(out, bundle) || inside(real, realpathSync(bundle))) {
    throw new RagdiffError('CONVERT_REFUSED', `output ${out} is inside the source bundle ${bundle}; write the converted bundle elsewhere (the source stays untouched)`);
  }
}

function inside(child: string, parent: string): boolean {
  const c = resolve(child);
  const p = resolve(parent);
  return c === p || c.startsWith(p.endsWith(sep) ? p : p + sep);
}

export function convertReferenceAttention(opts: ConvertUnetOptions): ConvertUnetResult {
  const out = resolve(opts.out);
  if (opts.forbidInside) assertOutsideBundle(out, opts.forbidInside);
  if (resolve(opts.unet) === out) throw new RagdiffError('CONVERT_REFUSED', `output ${opts.out} is the source UNet itself`);
  const src = readOnnxModel(opts.unet, { shareInline: true });
  const { model, blocks } = referenceAttentionGraph(src.model, opts.unet, opts);
  for (const t of model.graph.initializer ?? []) {
    const loc = externalData(t)?.location;
    if (loc && resolve(dirname(out), loc) === out) {
      throw new RagdiffError('CONVERT_REFUSED', `output ${opts.out} would overwrite the weights it shares (${loc}); choose another file name`);
    }
  }
  mkdirSync(dirname(out), { recursive: true });
  const shared = shareExternalData({ model, dir: src.dir }, dirname(out));
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.partial`);
  try {
    writeOnnxModel(shared, tmp);
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  return { out, selfAttentionBlocks: blocks.length, heads: blocks.map((b) => b.heads) };
}

export interface ConvertIpAdapterOptions {
  /** The plain UNet model.onnx and its diffusers config.json. */
  unet: string;
  config: Record<string, unknown>;
  /** The IP-Adapter .safetensors (plain: image_proj.proj/norm + ip_adapter.N.to_k_ip/to_v_ip). */
  weights: string;
  /** Directory for ip_adapter.onnx and image_proj.onnx (same filesystem as the sources). */
  outDir: string;
  forbidInside?: string;
}

export interface ConvertIpAdapterResult { unet: string; imageProj: string; crossBlocks: number; crossDim: number }

/** Writes OUT/ip_adapter.onnx (UNet + decoupled cross-attention) and OUT/image_proj.onnx. */
export function convertIpAdapter(opts: ConvertIpAdapterOptions): ConvertIpAdapterResult {
  const outDir = resolve(opts.outDir);
  if (opts.forbidInside) assertOutsideBundle(outDir, opts.forbidInside);
  const src = readOnnxModel(opts.unet, { shareInline: true });
  const check = openSafetensors(opts.weights);   // validate everything before touching the output
  try {
    imageProjGraph(check, ipAdapterGraph(src.model, opts.unet, opts.config, check, src.dir).crossDim, src.dir);
  } finally {
    check.close();
  }
  mkdirSync(outDir, { recursive: true });
  // every weight file is reached from outDir through a hard link: the UNet's, then the adapter's
  const base = shareExternalData(src, outDir);
  const adapter = join(outDir, basename(opts.weights));
  if (!existsSync(adapter) || statSync(adapter).ino !== statSync(opts.weights).ino) {
    try {
      linkSync(resolve(opts.weights), adapter);
    } catch (e) {
      throw new RagdiffError('OUTPUT_NOT_WRITABLE', `cannot hard-link ${opts.weights} into ${outDir} (${(e as Error).message}); write the output on the same filesystem (weights are shared, never copied)`, { cause: e });
    }
  }
  const file = openSafetensors(adapter);
  try {
    const { model, crossBlocks, crossDim } = ipAdapterGraph(base.model, opts.unet, opts.config, file, outDir);
    const proj = imageProjGraph(file, crossDim, outDir);
    const unetOut = join(outDir, 'ip_adapter.onnx');
    const projOut = join(outDir, 'image_proj.onnx');
    for (const [m, out] of [[model, unetOut], [proj, projOut]] as const) {
      const tmp = join(outDir, `.${basename(out)}.${process.pid}.partial`);
      try {
        writeOnnxModel({ model: m, dir: outDir }, tmp);
        renameSync(tmp, out);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
    }
    return { unet: unetOut, imageProj: projOut, crossBlocks, crossDim };
  } finally {
    file.close();
  }
}
