/**
 * Arms compared per prompt, as tools/tiny_emoji/metrics.py does: each prompt's score is the mean
 * over its noises, prompts where the arms tie are dropped, and the two-sided exact sign test asks
 * whether "better" and "worse" prompts could be a fair coin. Prompts are the independent units,
 * not samples (several noises of one prompt are not independent evidence).
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';

export interface SignTestResult {
  /** Prompts where arm a scores higher than arm b. */
  better: number;
  /** Prompts where arm b scores higher. */
  worse: number;
  /** Prompts where they tie (dropped from the test). */
  ties: number;
  /** Exact two-sided p: min(1, 2 · P(X ≤ min(better, worse))), X ~ Binomial(better + worse, 1/2); 1 when n = 0. */
  p: number;
}

function checkScores(name: string, v: ArrayLike<number>): void {
  if (v === null || typeof v !== 'object' || typeof v.length !== 'number') throw typeError('INVALID_TYPE', `${name} must be an array of numbers`);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== 'number' || !Number.isFinite(v[i])) throw rangeError('NON_FINITE', `${name}[${i}] must be a finite number, got ${v[i]}`);
  }
}

/** Exact two-sided sign-test p-value for `wins` against `losses` (BigInt binomials, exact for any n). */
export function signTestP(wins: number, losses: number): number {
  for (const [k, v] of [['wins', wins], ['losses', losses]] as const) {
    if (!Number.isInteger(v) || v < 0) throw rangeError('OUT_OF_RANGE', `${k} must be a non-negative integer, got ${v}`);
  }
  const n = wins + losses;
  if (n === 0) return 1;
  const k = Math.min(wins, losses);
  let c = 1n;
  let tail = 0n;
  for (let i = 0; i <= k; i++) {
    tail += c;
    c = (c * BigInt(n - i)) / BigInt(i + 1);
  }
  // 2·tail / 2^n, computed so that huge n does not overflow to Infinity / Infinity.
  const shift = BigInt(Math.max(0, n - 1 - 1000));
  const p = Number(tail >> shift) / 2 ** (n - 1 - Number(shift));
  return Math.min(1, p);
}

/** Sign test between two arms' per-prompt scores (same prompt order in `a` and `b`). */
export function signTest(a: ArrayLike<number>, b: ArrayLike<number>): SignTestResult {
  checkScores('a', a);
  checkScores('b', b);
  if (a.length !== b.length) throw rangeError('LENGTH_MISMATCH', `the arms must score the same prompts: ${a.length} vs ${b.length}`);
  let better = 0;
  let worse = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i]! > b[i]!) better++;
    else if (b[i]! > a[i]!) worse++;
  }
  return { better, worse, ties: a.length - better - worse, p: signTestP(better, worse) };
}

/**
 * Per-prompt mean of per-sample scores (e.g. top-5 hits as 0/1). `promptOf[i]` names the prompt of
 * sample i; the result keeps the prompts in first-seen order.
 */
export function perPromptMeans<K extends string | number>(scores: ArrayLike<number>, promptOf: readonly K[]): Map<K, number> {
  checkScores('scores', scores);
  if (!Array.isArray(promptOf)) throw typeError('INVALID_TYPE', 'promptOf must be an array of prompt ids');
  if (promptOf.length !== scores.length) throw rangeError('LENGTH_MISMATCH', `promptOf has ${promptOf.length} entries for ${scores.length} scores`);
  const sum = new Map<K, { s: number; n: number }>();
  promptOf.forEach((k, i) => {
    const e = sum.get(k) ?? { s: 0, n: 0 };
    e.s += scores[i]!;
    e.n++;
    sum.set(k, e);
  });
  return new Map([...sum].map(([k, e]) => [k, e.s / e.n]));
}

/** Sign test between two arms given as prompt → score maps; refuses arms that scored different prompts. */
export function pairedSignTest<K extends string | number>(a: ReadonlyMap<K, number>, b: ReadonlyMap<K, number>): SignTestResult {
  if (!(a instanceof Map) || !(b instanceof Map)) throw typeError('INVALID_TYPE', 'arms must be Maps of prompt → score');
  const keys = [...a.keys()];
  const missing = keys.filter((k) => !b.has(k));
  if (missing.length > 0 || b.size !== a.size) {
    throw new RagdiffError('EVAL_PROMPTS_MISMATCH', `the two arms scored different prompts (${missing.length} of arm a missing from arm b, sizes ${a.size} / ${b.size})`);
  }
  return signTest(keys.map((k) => a.get(k)!), keys.map((k) => b.get(k)!));
}
