/**
 * References for the shared native top-k (native/core/topk.cc):
 * - referenceStoreExact: the image store's JavaScript exact search that the
 *   native kernel replaced (VectorIndex.exact before), kept as it was: cosine as
 *   the inner product of normalised float32 vectors, accumulated in double over
 *   4 lanes; top k kept sorted by insertion, so equal scores keep scan order.
 * - referenceTopK: the kernel's contract for both metrics in plain TypeScript:
 *   squared L2 in float32 (Math.fround after every operation, the kernel's 8
 *   lanes and pairwise final sum, so the same bits) or the store's inner
 *   product; candidates = subset or every row, less rows whose mask byte is not
 *   1; a stable sort, best first (NaN last), so ties keep candidate order.
 */

export interface RefHit {
  row: number;
  score: number;
}

/** VectorIndex.exact as it was in JavaScript: `matrix` rows of `d`, `mask` 1 = active. */
export function referenceStoreExact(matrix: Float32Array, d: number, mask: Uint8Array, query: Float32Array, k: number, labels?: ArrayLike<number>): RefHit[] {
  const m = matrix;
  const d4 = d - (d % 4);
  const topScore = new Float64Array(k).fill(-Infinity);
  const topLabel = new Int32Array(k).fill(-1);
  let worst = -Infinity;
  const n = labels ? labels.length : mask.length;
  for (let j = 0; j < n; j++) {
    const l = labels ? labels[j]! : j;
    if (mask[l] !== 1) continue;
    const o = l * d;
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let i = 0;
    for (; i < d4; i += 4) {
      s0 += m[o + i]! * query[i]!;
      s1 += m[o + i + 1]! * query[i + 1]!;
      s2 += m[o + i + 2]! * query[i + 2]!;
      s3 += m[o + i + 3]! * query[i + 3]!;
    }
    for (; i < d; i++) s0 += m[o + i]! * query[i]!;
    const s = s0 + s1 + s2 + s3;
    if (s <= worst) continue;
    let p = k - 1;
    while (p > 0 && topScore[p - 1]! < s) {
      topScore[p] = topScore[p - 1]!;
      topLabel[p] = topLabel[p - 1]!;
      p--;
    }
    topScore[p] = s;
    topLabel[p] = l;
    worst = topScore[k - 1]!;
  }
  const out: RefHit[] = [];
  for (let p = 0; p < k && topLabel[p]! >= 0; p++) out.push({ row: topLabel[p]!, score: topScore[p]! });
  return out;
}

const f = Math.fround;

/** Squared L2 in float32, the kernel's lane order (core/topk.cc l2sq). */
export function referenceL2sq(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  const acc = [0, 0, 0, 0, 0, 0, 0, 0];
  let i = 0;
  for (; i + 8 <= d; i += 8) {
    for (let l = 0; l < 8; l++) {
      const t = f(a[ao + i + l]! - b[bo + i + l]!);
      acc[l] = f(acc[l]! + f(t * t));
    }
  }
  for (; i < d; i++) {
    const t = f(a[ao + i]! - b[bo + i]!);
    acc[i & 7] = f(acc[i & 7]! + f(t * t));
  }
  const [a0, a1, a2, a3, a4, a5, a6, a7] = acc as [number, number, number, number, number, number, number, number];
  return f(f(f(a0 + a1) + f(a2 + a3)) + f(f(a4 + a5) + f(a6 + a7)));
}

/** The inner product in double, the store's lane order (core/topk.cc dot_f64). */
export function referenceDot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  const d4 = d - (d % 4);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  let i = 0;
  for (; i < d4; i += 4) {
    s0 += a[ao + i]! * b[bo + i]!;
    s1 += a[ao + i + 1]! * b[bo + i + 1]!;
    s2 += a[ao + i + 2]! * b[bo + i + 2]!;
    s3 += a[ao + i + 3]! * b[bo + i + 3]!;
  }
  for (; i < d; i++) s0 += a[ao + i]! * b[bo + i]!;
  return s0 + s1 + s2 + s3;
}

/** Top-k of one query (row `qi` of `queries`) under the kernel's contract. */
export function referenceTopK(
  rows: Float32Array, d: number, queries: Float32Array, qi: number, k: number, metric: 'l2' | 'ip', subset: ArrayLike<number> | null, mask: Uint8Array | null,
): RefHit[] {
  const n = rows.length / d;
  const m = subset ? subset.length : n;
  const all: RefHit[] = [];
  for (let p = 0; p < m; p++) {
    const row = subset ? subset[p]! : p;
    if (mask && mask[row] !== 1) continue;
    const score = metric === 'l2' ? referenceL2sq(queries, qi * d, rows, row * d, d) : referenceDot(rows, row * d, queries, qi * d, d);
    all.push({ row, score });
  }
  const bad = (s: number) => (Number.isNaN(s) ? Infinity : metric === 'l2' ? s : -s);
  // Array.prototype.sort is stable: ties keep candidate order.
  all.sort((x, y) => {
    const bx = bad(x.score), by = bad(y.score);
    return bx < by ? -1 : bx > by ? 1 : 0;
  });
  return all.slice(0, k);
}
