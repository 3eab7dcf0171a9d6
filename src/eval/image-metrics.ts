/**
 * Pixel measures of the copy guard: PSNR between 8-bit RGB images of one size,
 * and the nearest image of a whole database by PSNR — retrieval that returns
 * the database image is not generation.
 */
import sharp from 'sharp';

/** Encoded image → 8-bit RGB at size × size, alpha composited on white (as the pipeline decodes references). */
export async function rgbOf(png: Uint8Array, size: number): Promise<Uint8Array> {
  const buf = await sharp(png).flatten({ background: '#ffffff' }).resize(size, size, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

export function psnr(a: Uint8Array, b: Uint8Array): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    se += d * d;
  }
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** The database's images packed in one buffer, for the nearest-by-PSNR search. */
export class PixelDatabase {
  private constructor(readonly ids: string[], private readonly pixels: Uint8Array, private readonly size: number) {}

  static async build(entries: { id: string; bytes: Uint8Array }[], size: number): Promise<PixelDatabase> {
    const n = size * size * 3;
    const pixels = new Uint8Array(entries.length * n);
    for (let i = 0; i < entries.length; i++) pixels.set(await rgbOf(entries[i]!.bytes, size), i * n);
    return new PixelDatabase(entries.map((e) => e.id), pixels, size);
  }

  /** The database image closest to `rgb` by squared error, and its PSNR. */
  nearest(rgb: Uint8Array): { id: string; psnr: number } {
    const n = this.size * this.size * 3;
    let best = Infinity;
    let at = -1;
    for (let j = 0; j < this.ids.length; j++) {
      const off = j * n;
      let se = 0;
      for (let i = 0; i < n && se < best; i++) {
        const d = rgb[i]! - this.pixels[off + i]!;
        se += d * d;
      }
      if (se < best) {
        best = se;
        at = j;
      }
    }
    const mse = best / n;
    return { id: this.ids[at] ?? '', psnr: mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse) };
  }
}
