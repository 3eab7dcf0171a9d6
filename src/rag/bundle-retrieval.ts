/**
 * What a loaded bundle offers retrieval: neighbour slots and image_proj (token
 * modes), a VAE encoder (reference-init), the encoder identity a compatible
 * store carries, and the defaults the bundle declares in model_index.json:
 *
 *   "ragdiff": { "retrieval": { "default_mode": "tokens", "scales": { "text": 3, "retrieval": 4 },
 *                               "reference_init": { "strength": 0.7, "blend": 1 },
 *                               "reference_attention": { "fidelity": 1, "default": true, "branches": "prompt" } } }
 * (`default: true`: the token modes add reference attention unless a request says referenceAttention: false;
 * `branches`: which guidance branches attend to the reference, see RetrievalOptions.referenceAttention).
 */
import { RagdiffError } from '../errors.js';
import { clipEncoderId } from '../models/encoder-id.js';
import { readBundle, type PipelineInfo } from '../pipeline/index.js';
import type { BundleRetrieval } from './options.js';
import { RETRIEVAL_MODES, type RetrievalMode } from './types.js';

function num(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RagdiffError('MODEL_FILE_INVALID', `model_index.json: ${what} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function branchesOf(v: unknown): 'prompt' | 'retrieval' | undefined {
  if (v === undefined || v === 'prompt' || v === 'retrieval') return v;
  throw new RagdiffError('MODEL_FILE_INVALID', `model_index.json: ragdiff.retrieval.reference_attention.branches must be "prompt" or "retrieval", got ${JSON.stringify(v)}`);
}

export function bundleRetrieval(info: PipelineInfo): BundleRetrieval {
  const manifest = readBundle(info.dir);
  const r = ((manifest.ragdiff ?? {}) as { retrieval?: Record<string, unknown> }).retrieval ?? {};
  const mode = r.default_mode as RetrievalMode | undefined;
  if (mode !== undefined && !RETRIEVAL_MODES.includes(mode)) {
    throw new RagdiffError('MODEL_FILE_INVALID', `model_index.json: ragdiff.retrieval.default_mode must be one of ${RETRIEVAL_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  }
  const scales = (r.scales ?? {}) as Record<string, unknown>;
  const init = (r.reference_init ?? {}) as Record<string, unknown>;
  const attention = (r.reference_attention ?? {}) as Record<string, unknown>;
  return {
    slots: info.neighbourSlots,
    embedDim: info.embedDim,
    canImg2Img: info.canImg2Img,
    referenceAttention: info.referenceAttention,
    encoderId: clipEncoderId(info.dir),
    defaults: {
      mode,
      textScale: num(scales.text, 'ragdiff.retrieval.scales.text'),
      retrievalScale: num(scales.retrieval, 'ragdiff.retrieval.scales.retrieval'),
      strength: num(init.strength, 'ragdiff.retrieval.reference_init.strength'),
      blend: num(init.blend, 'ragdiff.retrieval.reference_init.blend'),
      fidelity: num(attention.fidelity, 'ragdiff.retrieval.reference_attention.fidelity'),
      referenceAttention: attention.default === true,
      attentionBranches: branchesOf(attention.branches),
    },
  };
}
