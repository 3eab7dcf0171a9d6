/**
 * Refusals that keep the evaluation honest (issue 14): no bundle without its held-out split (the
 * split is what makes "held-out" mean unseen), no store embedded by another encoder (neighbours
 * would be meaningless), no evaluation seed that was also used to tune scales (tuning on the
 * evaluated noises would leak into the result).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RagdiffError, rangeError, typeError } from '../errors.js';

export interface HeldOutSplit {
  heldoutSubcategories: string[];
  /** `unified` codes of every held-out image. */
  heldout: string[];
  counts?: Record<string, number>;
}

/** Reads `<bundle>/split.json`; EVAL_SPLIT_MISSING when absent, EVAL_SPLIT_INVALID when malformed. */
export function requireSplit(bundleDir: string): HeldOutSplit {
  if (typeof bundleDir !== 'string' || bundleDir.length === 0) throw typeError('INVALID_TYPE', 'bundleDir must be a non-empty string');
  const path = join(bundleDir, 'split.json');
  if (!existsSync(path)) {
    throw new RagdiffError('EVAL_SPLIT_MISSING', `${path} is missing: without the held-out split the evaluation cannot tell seen from unseen concepts`);
  }
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new RagdiffError('EVAL_SPLIT_INVALID', `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const strings = (x: unknown) => Array.isArray(x) && x.length > 0 && x.every((s) => typeof s === 'string' && s.length > 0);
  if (!v || typeof v !== 'object' || !strings(v.heldout_subcategories) || !strings(v.heldout)) {
    throw new RagdiffError('EVAL_SPLIT_INVALID', `${path} must list non-empty heldout_subcategories and heldout`);
  }
  return {
    heldoutSubcategories: v.heldout_subcategories as string[],
    heldout: v.heldout as string[],
    counts: (v.counts && typeof v.counts === 'object' ? v.counts : undefined) as Record<string, number> | undefined,
  };
}

/** What identifies an encoder: ImageTextEncoder, or a store's stats(). */
export interface EncoderIdentity {
  dim: number;
  /** ImageTextEncoder.id; the store records `anonymous-<dim>` for encoders without one. */
  id?: string;
  /** ImageStore.stats().encoderId. */
  encoderId?: string;
}

const idOf = (e: EncoderIdentity): string => e.encoderId ?? e.id ?? `anonymous-${e.dim}`;

/** EVAL_ENCODER_MISMATCH unless the store was embedded by this encoder (same id and width). */
export function requireSameEncoder(store: EncoderIdentity, encoder: EncoderIdentity): void {
  for (const [name, e] of [['store', store], ['encoder', encoder]] as const) {
    if (!e || typeof e !== 'object' || !Number.isInteger(e.dim) || e.dim < 1) throw typeError('INVALID_TYPE', `${name} must have an integer dim ≥ 1`);
  }
  const a = idOf(store);
  const b = idOf(encoder);
  if (a !== b || store.dim !== encoder.dim) {
    throw new RagdiffError('EVAL_ENCODER_MISMATCH', `the store was embedded by ${a} (width ${store.dim}) but the evaluation uses ${b} (width ${encoder.dim}); rebuild the store with this encoder`);
  }
}

function checkSeeds(name: string, seeds: readonly number[]): void {
  if (!Array.isArray(seeds)) throw typeError('INVALID_TYPE', `${name} must be an array of integers`);
  seeds.forEach((s, i) => {
    if (typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0) throw rangeError('OUT_OF_RANGE', `${name}[${i}] must be a non-negative integer, got ${String(s)}`);
  });
}

/** EVAL_SEED_OVERLAP when an evaluation seed was also used to tune guidance scales. */
export function requireDisjointSeeds(evalSeeds: readonly number[], tuningSeeds: readonly number[]): void {
  checkSeeds('evalSeeds', evalSeeds);
  checkSeeds('tuningSeeds', tuningSeeds);
  if (evalSeeds.length === 0) throw rangeError('OUT_OF_RANGE', 'evalSeeds must not be empty');
  const tuning = new Set(tuningSeeds);
  const both = [...new Set(evalSeeds.filter((s) => tuning.has(s)))];
  if (both.length > 0) {
    throw new RagdiffError('EVAL_SEED_OVERLAP', `evaluation seeds ${both.join(', ')} were also used to tune scales; evaluate on other seeds`);
  }
}
