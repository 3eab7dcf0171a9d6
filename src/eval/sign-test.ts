/**
 * Exact two-sided sign test over paired per-prompt scores (prompts are the
 * independent units; ties are dropped), as tools/tiny_emoji/metrics.py does.
 */
export interface SignTest {
  /** Prompts where a > b, and where b > a. */
  better: number;
  worse: number;
  p: number;
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

export function signTest(a: readonly number[], b: readonly number[]): SignTest {
  if (a.length !== b.length) throw new RangeError(`sign test needs paired scores, got ${a.length} and ${b.length}`);
  let better = 0;
  let worse = 0;
  a.forEach((x, i) => {
    if (x > b[i]!) better++;
    else if (b[i]! > x) worse++;
  });
  const n = better + worse;
  const k = Math.min(better, worse);
  let tail = 0;
  for (let i = 0; i <= k; i++) tail += Math.exp(logChoose(n, i) - n * Math.LN2);
  return { better, worse, p: n === 0 ? 1 : Math.min(1, 2 * tail) };
}
