/**
 * The database swap, measured in pairs (RDM's swap: change the database, the output should follow it).
 * Two arms with the same prompts and noises — one retrieving from the Noto database, one from the
 * Twemoji database — are compared output by output, so anything both outputs share (the generator's own
 * blur and colours, which no classifier trained on real images was calibrated for) cancels:
 *
 *   style margin   = logit(noto) − logit(twemoji) of the style classifier;
 *   rendering pref = PSNR(output, the target's Noto image) − PSNR(output, the target's Twemoji image),
 *                    8-bit RGB, whole image: > 0 means the output is nearer the Noto rendering of the
 *                    very emoji it was asked for. No classifier, so nothing to calibrate.
 *
 * A pair moves toward Noto when the Noto-database output has the larger value. Prompts are the units
 * of the sign test (each prompt's mean over its noises), as everywhere in the evaluation.
 */
import { rangeError } from '../errors.js';
import { psnr8 } from './copy-guard.js';
import { signTest, type SignTestResult } from './sign-test.js';

/** Per-output swap values of one arm, in sample order. */
export interface SwapValues {
  prompts: string[];
  /** Style classifier logit(noto) − logit(twemoji); NaN where no classifier ran. */
  notoMargin: number[];
  /** PSNR to the target's Noto image − PSNR to its Twemoji image (dB); NaN where a rendering is missing. */
  renderingPref: number[];
}

export interface SwapMeasure {
  /** Mean over outputs (NaNs skipped). */
  meanNotoDb: number;
  meanTwemojiDb: number;
  /** Share of outputs above 0 (classified Noto / nearer the Noto rendering) with each database. */
  positiveNotoDb: number;
  positiveTwemojiDb: number;
  /** Share of output pairs where the Noto-database output has the larger value. */
  pairsTowardNoto: number;
  /** Per-prompt sign test, Noto-database arm vs Twemoji-database arm (better = toward Noto). */
  prompts: SignTestResult;
  outputs: number;
}

export interface SwapPairResult {
  styleMargin?: SwapMeasure;
  renderingPreference?: SwapMeasure;
}

const PSNR_CAP = 99;

/** PSNR(output, Noto rendering) − PSNR(output, Twemoji rendering), each capped at 99 dB (identical images). */
export function renderingPreference(output: Uint8Array, noto: Uint8Array, twemoji: Uint8Array): number {
  if (output.length !== noto.length || output.length !== twemoji.length) {
    throw rangeError('LENGTH_MISMATCH', `images differ in size: ${output.length}, ${noto.length}, ${twemoji.length}`);
  }
  return Math.min(psnr8(output, noto), PSNR_CAP) - Math.min(psnr8(output, twemoji), PSNR_CAP);
}

function measure(prompts: string[], a: number[], b: number[]): SwapMeasure | undefined {
  const idx = a.map((_, i) => i).filter((i) => Number.isFinite(a[i]!) && Number.isFinite(b[i]!));
  if (!idx.length) return undefined;
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const share = (xs: number[]) => xs.filter((x) => x > 0).length / xs.length;
  const byPrompt = new Map<string, number[]>();
  for (const i of idx) (byPrompt.get(prompts[i]!) ?? byPrompt.set(prompts[i]!, []).get(prompts[i]!)!).push(i);
  const groups = [...byPrompt.values()];
  const av = idx.map((i) => a[i]!);
  const bv = idx.map((i) => b[i]!);
  return {
    meanNotoDb: mean(av),
    meanTwemojiDb: mean(bv),
    positiveNotoDb: share(av),
    positiveTwemojiDb: share(bv),
    pairsTowardNoto: idx.filter((i) => a[i]! > b[i]!).length / idx.length,
    prompts: signTest(groups.map((g) => mean(g.map((i) => a[i]!))), groups.map((g) => mean(g.map((i) => b[i]!)))),
    outputs: idx.length,
  };
}

/**
 * Pairs the Noto-database arm's outputs with the Twemoji-database arm's (same prompts, same noises, same
 * order — checked) and measures how far the swap moved them toward Noto.
 */
export function pairedSwap(notoArm: SwapValues, twemojiArm: SwapValues): SwapPairResult {
  const n = notoArm.prompts.length;
  if (twemojiArm.prompts.length !== n || notoArm.prompts.some((p, i) => p !== twemojiArm.prompts[i])) {
    throw rangeError('LENGTH_MISMATCH', 'the two swap arms must have the same prompts in the same order');
  }
  for (const v of [notoArm, twemojiArm]) {
    if (v.notoMargin.length !== n || v.renderingPref.length !== n) throw rangeError('LENGTH_MISMATCH', 'one value per output is needed');
  }
  const out: SwapPairResult = {};
  const s = measure(notoArm.prompts, notoArm.notoMargin, twemojiArm.notoMargin);
  if (s) out.styleMargin = s;
  const r = measure(notoArm.prompts, notoArm.renderingPref, twemojiArm.renderingPref);
  if (r) out.renderingPreference = r;
  return out;
}
