/**
 * What every UNet row is conditioned on, built once per job, branch-major
 * ([branch][image] rows, the UNet batch's order): encoder_hidden_states (text
 * states, then neighbour tokens in ragdiff's slots) and the family's extra
 * inputs — SDXL's text_embeds (the branch text's pooled embedding) and time_ids,
 * LCM's timestep_cond (the guidance-scale embedding).
 */
import { RagdiffError } from '../../errors.js';
import type { OpenedSession } from '../../models/session.js';
import type { GuidanceBranch } from '../guidance.js';
import { buildEncoderHiddenStates } from '../context.js';
import { FloatBoundary, floatTypeOf, type FloatType } from '../tensor-io.js';
import { dim, tensorMeta } from '../session-meta.js';
import { guidanceScaleEmbedding, type UnetExtra } from '../families/index.js';
import type { EncodedPrompts } from './encode-prompt.js';
import type { Job, ModelInfo } from '../job.js';

/** One conditioning input for all rows: `width` floats per row. */
export interface RowInput {
  name: string;
  width: number;
  data: Float32Array;
}

/** The float type and per-row width a UNet declares for an extra input, checked against what the family feeds. */
export function extraWidth(unet: OpenedSession, name: UnetExtra, info: ModelInfo, unetConfig: Record<string, unknown>): { type: FloatType; width: number } {
  const m = tensorMeta(unet, name, 'input');
  const type = floatTypeOf(m.type, `${unet.path}: ${name}`);
  const declared = dim(m.shape[1]);
  const expected = name === 'time_ids' ? 6 : name === 'text_embeds' ? info.pooledWidth : (typeof unetConfig.time_cond_proj_dim === 'number' ? unetConfig.time_cond_proj_dim : undefined);
  const width = declared ?? expected;
  if (!width) throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: cannot tell the width of ${name} (shape ${JSON.stringify(m.shape)}; unet/config.json says nothing)`);
  if (expected !== undefined && expected !== 0 && declared !== undefined && declared !== expected) {
    const from = name === 'text_embeds' ? "text_encoder_2's pooled text_embeds" : name === 'time_ids' ? 'SDXL time ids (6)' : 'unet/config.json time_cond_proj_dim';
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: ${name} has width ${declared}, ${from} gives ${expected}`);
  }
  return { type, width };
}

/**
 * encoder_hidden_states for all rows ([rows][sequence + slots][width]) in `ehs`, and the
 * family's extra inputs. `branches` have their neighbour tokens already projected.
 */
export function buildConditioning(
  info: ModelInfo,
  job: Job,
  branches: readonly GuidanceBranch[],
  prompts: EncodedPrompts,
  ehs: Float32Array,
  extras: readonly { name: UnetExtra; width: number }[],
): RowInput[] {
  const batch = job.seeds.length;
  // One native pass: text states, neighbour tokens scaled by their weights, zeros for dropped slots.
  buildEncoderHiddenStates(ehs, { batch, textLength: prompts.sequence, slots: info.neighbourSlots, width: info.tokenWidth }, branches, prompts.states);
  const rows = branches.length * batch;
  return extras.map(({ name, width }) => {
    const data = new Float32Array(rows * width);
    const fillRow = (r: number, v: ArrayLike<number>) => data.set(v, r * width);
    branches.forEach((b, bi) => {
      let row: ArrayLike<number>;
      if (name === 'text_embeds') {
        if (!prompts.pooled) throw new RagdiffError('INTERNAL', 'text_embeds needs a pooled text encoder');
        row = prompts.pooled.subarray(b.text * width, (b.text + 1) * width);
      } else if (name === 'time_ids') {
        if (!job.timeIds || job.timeIds.length !== 6) throw new RagdiffError('INTERNAL', 'time_ids needs job.timeIds (6 numbers)');
        row = job.timeIds;
      } else {
        if (job.guidanceScale === undefined) throw new RagdiffError('INTERNAL', 'timestep_cond needs job.guidanceScale');
        row = guidanceScaleEmbedding(job.guidanceScale, width);
      }
      for (let i = 0; i < batch; i++) fillRow(bi * batch + i, row);
    });
    return { name, width, data };
  });
}
