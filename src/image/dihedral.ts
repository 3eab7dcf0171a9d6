/**
 * The eight symmetries of the square (the dihedral group D4) on square
 * interleaved RGB pixels: the identity, three rotations, and four mirrors.
 * Safety screening uses them so that a flipped or rotated copy of a blocked
 * picture meets an anchor (or a hash) in its own orientation.
 */
import { rangeError } from '../errors.js';

export const DIHEDRAL_NAMES = ['identity', 'rot90', 'rot180', 'rot270', 'flip-h', 'flip-v', 'transpose', 'anti-transpose'] as const;
export type DihedralName = (typeof DIHEDRAL_NAMES)[number];

/** Source coordinates (x, y) of destination pixel (X, Y) for each transform of an n×n image. */
const SOURCE: Record<DihedralName, (X: number, Y: number, m: number) => [number, number]> = {
  identity: (X, Y) => [X, Y],
  rot90: (X, Y, m) => [Y, m - X], // clockwise
  rot180: (X, Y, m) => [m - X, m - Y],
  rot270: (X, Y, m) => [m - Y, X],
  'flip-h': (X, Y, m) => [m - X, Y],
  'flip-v': (X, Y, m) => [X, m - Y],
  transpose: (X, Y) => [Y, X],
  'anti-transpose': (X, Y, m) => [m - Y, m - X],
};

/** One transform of a square n×n RGB image. */
export function dihedral(rgb: Uint8Array, n: number, name: DihedralName): Uint8Array {
  if (rgb.length !== n * n * 3) throw rangeError('LENGTH_MISMATCH', `dihedral needs a square ${n}×${n}×3 image, got ${rgb.length} bytes`);
  if (name === 'identity') return rgb;
  const out = new Uint8Array(rgb.length);
  const src = SOURCE[name];
  const m = n - 1;
  for (let Y = 0; Y < n; Y++) {
    for (let X = 0; X < n; X++) {
      const [x, y] = src(X, Y, m);
      const o = (Y * n + X) * 3;
      const i = (y * n + x) * 3;
      out[o] = rgb[i]!;
      out[o + 1] = rgb[i + 1]!;
      out[o + 2] = rgb[i + 2]!;
    }
  }
  return out;
}

/** All eight transforms, the identity first. */
export function dihedralAll(rgb: Uint8Array, n: number): Uint8Array[] {
  return DIHEDRAL_NAMES.map((name) => dihedral(rgb, n, name));
}
