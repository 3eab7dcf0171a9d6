/**
 * `ragdiff convert reference-attention` as an API: one UNet file in, its reference-attention
 * variant out, weights shared with the source (external data by reference, hard-linked into the
 * output directory when it differs), written to a temporary name and renamed at the end so a
 * killed or failed conversion leaves nothing half-written.
 */
import { existsSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { RagdiffError } from '../errors.js';
import { externalData, readOnnxModel, referenceInlineWeights, shareExternalData, writeOnnxModel } from './onnx-model.js';
import { type ReferenceAttentionOptions, referenceAttentionGraph } from './reference-attention.js';

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
  const src = readOnnxModel(opts.unet);
  referenceInlineWeights(src, opts.unet);
  const { model, blocks } = referenceAttentionGraph(src.model, opts.unet, opts);
  for (const t of model.graph.initializer ?? []) {
    const loc = externalData(t)?.location;
    if (loc && resolve(dirname(out), loc) === out) {
      throw new RagdiffError('CONVERT_REFUSED', `output ${opts.out} would overwrite the weights it shares (${loc}); choose another file name`);
    }
  }
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
