/** diffusers' scheduler-test fixtures (tests/schedulers/test_schedulers.py): the deterministic sample and dummy model. */
const f = Math.fround;
export const DUMMY_N = 4 * 3 * 8 * 8;

/** torch.arange(768).reshape(3, 8, 8, 4).permute(3, 0, 1, 2) / 768, as a flat [4, 3, 8, 8] array. */
export function dummySampleDeter(): Float32Array {
  const s = new Float32Array(DUMMY_N);
  for (let b = 0; b < 4; b++) for (let c = 0; c < 3; c++) for (let h = 0; h < 8; h++) for (let w = 0; w < 8; w++) {
    s[((b * 3 + c) * 8 + h) * 8 + w] = f((((c * 8 + h) * 8 + w) * 4 + b) / DUMMY_N);
  }
  return s;
}
/** diffusers' dummy model: sample * t / (t + 1), in float32. */
export const dummyModel = (x: Float32Array, t: number): Float32Array => {
  const tf = f(t), d = f(tf + 1);
  return x.map((v) => f(f(v * tf) / d));
};
export const sumAbs = (x: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.abs(x[i]!);
  return s;
};
