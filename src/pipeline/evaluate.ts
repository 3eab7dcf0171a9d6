/**
 * Recognisability of generated images: zero-shot top-1 classification with a
 * bundle's own CLIP-style encoders (image_encoder + text_encoder), the prompts
 * being the classes. Chance is 1 / prompts.length.
 */
import sharp from 'sharp';
import { loadClipEncoders } from '../models/encoders.js';

export interface Labelled {
  png: Uint8Array;
  prompt: string;
}

/** Fraction of images whose most similar prompt (cosine of the CLIP embeddings) is their own. */
export async function clipTop1(bundleDir: string, images: readonly Labelled[], prompts: readonly string[]): Promise<number> {
  const clip = await loadClipEncoders(bundleDir);
  try {
    const texts = await clip.embedText(prompts);
    const rgb = await Promise.all(images.map(async ({ png }) => {
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    }));
    const embeds = await clip.embedImages(rgb);
    let hits = 0;
    embeds.forEach((e, i) => {
      let best = -1;
      let bestScore = -Infinity;
      texts.forEach((t, j) => {
        let s = 0;
        for (let k = 0; k < e.length; k++) s += e[k]! * t[k]!;
        if (s > bestScore) [best, bestScore] = [j, s];
      });
      if (prompts[best] === images[i]!.prompt) hits++;
    });
    return images.length ? hits / images.length : 0;
  } finally {
    await clip.close();
  }
}
