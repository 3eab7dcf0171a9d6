/**
 * The database-swap measure: a small Twemoji-vs-Noto classifier (trained on
 * VAE round-trips by tools/tiny_emoji/style_classifier.py) applied to outputs.
 * Absent file → the measure is skipped (null).
 */
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';

export class StyleClassifier {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async open(path: string): Promise<StyleClassifier | null> {
    if (!existsSync(path)) return null;
    return new StyleClassifier(await ort.InferenceSession.create(path, { executionProviders: ['cpu'] }));
  }

  /** Share of images (8-bit RGB, size × size) classified Noto. Input: [B, 3, H, W] in [-1, 1]; output: Noto logit or probability per image. */
  async notoShare(rgbs: Uint8Array[], size: number): Promise<number> {
    const plane = size * size;
    const x = new Float32Array(rgbs.length * 3 * plane);
    rgbs.forEach((rgb, b) => {
      for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) x[b * 3 * plane + c * plane + p] = rgb[p * 3 + c]! / 127.5 - 1;
    });
    const input = this.session.inputNames[0]!;
    const out = await this.session.run({ [input]: new ort.Tensor('float32', x, [rgbs.length, 3, size, size]) });
    const y = out[this.session.outputNames[0]!]!.data as Float32Array;
    const per = y.length / rgbs.length;
    let noto = 0;
    for (let b = 0; b < rgbs.length; b++) {
      // [B] logit/probability of Noto, or [B, 2] logits (twemoji, noto)
      const isNoto = per === 2 ? y[b * 2 + 1]! > y[b * 2]! : y[b]! > (y[b]! >= 0 && y[b]! <= 1 ? 0.5 : 0);
      if (isNoto) noto++;
    }
    return noto / rgbs.length;
  }

  close(): Promise<void> {
    return this.session.release();
  }
}
