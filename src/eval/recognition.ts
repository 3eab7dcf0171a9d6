/**
 * Zero-shot recognition by the bundle's own encoders, as the tiny-emoji model
 * card measures it: an image is embedded by the image encoder and ranked
 * against the text embeddings of every base emoji name; the rank of the
 * target name is the number of names scoring strictly higher (0 = top-1).
 */
import type { ImageTextEncoder } from '../models/encoders.js';

export class Recognizer {
  private constructor(private readonly encoder: ImageTextEncoder, readonly names: string[], private readonly nameEmbeds: Float32Array[]) {}

  static async create(encoder: ImageTextEncoder, names: string[]): Promise<Recognizer> {
    const embeds: Float32Array[] = [];
    for (let i = 0; i < names.length; i += 256) embeds.push(...(await encoder.embedText(names.slice(i, i + 256))));
    return new Recognizer(encoder, names, embeds);
  }

  /** Rank of each target name for each image (RGB at the encoder's size). */
  async ranks(images: { rgb: Uint8Array; width: number; height: number }[], targets: number[]): Promise<number[]> {
    const emb = await this.encoder.embedImages(images);
    return emb.map((e, i) => {
      const scores = this.nameEmbeds.map((t) => {
        let s = 0;
        for (let j = 0; j < t.length; j++) s += t[j]! * e[j]!;
        return s;
      });
      const target = scores[targets[i]!]!;
      return scores.filter((s) => s > target).length;
    });
  }

  /** Image embeddings (for the embedding-cosine copy guard). */
  embed(images: { rgb: Uint8Array; width: number; height: number }[]): Promise<Float32Array[]> {
    return this.encoder.embedImages(images);
  }
}
