/**
 * Which family a bundle is, from what it publishes: ragdiff.family when it says;
 * a `ragdiff` block (ragdiff's own layout, tiny-emoji); else model_index.json's
 * `_class_name` (diffusers, ORT and optimum spellings) and the UNet config
 * (addition_embed_type "text_time" is SDXL's, time_cond_proj_dim LCM's embedded
 * guidance, cross_attention_dim 1024 or v_prediction SD 2.x). Turbo exports publish
 * no marker of their own: they are told by their scheduler (Euler ancestral with
 * "trailing" spacing, as stabilityai/sd-turbo and sdxl-turbo publish it) or a
 * `_name_or_path` holding "turbo"; `"ragdiff": { "family": … }` overrides either way.
 */
import { RagdiffError } from '../../errors.js';
import { FAMILY_NAMES, type FamilyName } from './family.js';

const SD_CLASSES = ['StableDiffusionPipeline', 'StableDiffusionImg2ImgPipeline', 'StableDiffusionInpaintPipeline'];
const SDXL_CLASSES = ['StableDiffusionXLPipeline', 'StableDiffusionXLImg2ImgPipeline', 'StableDiffusionXLInpaintPipeline'];
const LCM_CLASSES = ['LatentConsistencyModelPipeline', 'LatentConsistencyModelImg2ImgPipeline'];

/** The diffusers class behind an ONNX spelling: OnnxStableDiffusionPipeline, ORTStableDiffusionXLPipeline, … */
export function baseClassName(name: string): string {
  return name.replace(/^(Onnx|ORT)/, '');
}

export interface FamilyEvidence {
  indexPath: string;
  index: Record<string, unknown>;
  unetConfig: Record<string, unknown>;
  schedulerConfig: Record<string, unknown>;
  /** `_name_or_path` of every config read. */
  names: string[];
}

export function detectFamily(e: FamilyEvidence): FamilyName {
  const rd = e.index.ragdiff as { family?: unknown } | undefined;
  if (rd?.family !== undefined) {
    if (!FAMILY_NAMES.includes(rd.family as FamilyName)) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${e.indexPath}: ragdiff.family must be one of ${FAMILY_NAMES.join(', ')}, got ${JSON.stringify(rd.family)}`);
    }
    return rd.family as FamilyName;
  }
  if (rd !== undefined) return 'tiny-emoji';
  const raw = e.index._class_name;
  const cls = typeof raw === 'string' ? baseClassName(raw) : 'StableDiffusionPipeline';
  const known = [...SD_CLASSES, ...SDXL_CLASSES, ...LCM_CLASSES];
  if (!known.includes(cls)) {
    throw new RagdiffError('UNSUPPORTED', `${e.indexPath}: _class_name ${JSON.stringify(raw)} is not a pipeline ragdiff runs (it runs ${known.join(', ')} and their Onnx/ORT exports)`);
  }
  const u = e.unetConfig;
  // SD-Turbo and SDXL-Turbo publish Euler ancestral with trailing spacing (no zero-SNR rescale), which no base model does.
  const sc = e.schedulerConfig;
  const turbo = e.names.some((n) => /turbo/i.test(n)) ||
    (sc._class_name === 'EulerAncestralDiscreteScheduler' && sc.timestep_spacing === 'trailing' && sc.rescale_betas_zero_snr !== true);
  const xl = SDXL_CLASSES.includes(cls) || u.addition_embed_type === 'text_time';
  if (xl) return turbo ? 'sdxl-turbo' : 'sdxl';
  if (LCM_CLASSES.includes(cls) || (typeof u.time_cond_proj_dim === 'number' && u.time_cond_proj_dim > 0)) return 'lcm';
  if (turbo) return 'sd-turbo';
  const v = e.schedulerConfig.prediction_type === 'v_prediction';
  return v || u.cross_attention_dim === 1024 ? 'sd2' : 'sd1';
}
