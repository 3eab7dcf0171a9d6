/**
 * The single decode path for untrusted image bytes (files, uploads, URLs,
 * init images): checks the header before decoding pixels, caps the pixel
 * count, takes the first frame of animations, converts CMYK/16-bit/greyscale
 * to 8-bit sRGB, composites alpha on a background and optionally resizes.
 */
import sharp, { type Metadata } from 'sharp';
import { RagdiffError, rangeError, typeError } from '../errors.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff' | 'avif' | 'heif';
export const DEFAULT_ALLOWED_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp', 'gif', 'tiff', 'avif', 'heif'];
/** 40 megapixels: well above any photo a user uploads, far below a decompression bomb. */
export const DEFAULT_MAX_PIXELS = 40_000_000;

export interface DecodeOptions {
  /** Largest width × height accepted, checked from the header before decoding. */
  maxPixels?: number;
  /** Target size; when both are given and differ from the source, the image is resized. */
  width?: number;
  height?: number;
  /** How a differently shaped image is fitted to width × height. Default 'cover' (centre crop). */
  fit?: 'cover' | 'contain' | 'fill';
  /** Colour alpha is composited on (and 'contain' pads with). Default white. */
  background?: { r: number; g: number; b: number };
  allowedFormats?: readonly ImageFormat[];
}

export interface DecodedImage {
  /** Interleaved RGB, row-major, 8 bits per channel (length width × height × 3). */
  rgb: Uint8Array;
  width: number;
  height: number;
  source: { width: number; height: number; format: string; resized: boolean; hadAlpha: boolean; pages: number };
}

function checkSize(name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (!Number.isInteger(v) || v < 1 || v > 16384) throw rangeError('OUT_OF_RANGE', `${name} must be an integer in 1..16384, got ${v}`);
}

export async function decodeImage(input: Uint8Array, options: DecodeOptions = {}): Promise<DecodedImage> {
  if (!(input instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'image input must be a Buffer or Uint8Array');
  if (input.length === 0) throw new RagdiffError('IMAGE_EMPTY', 'image input is empty (0 bytes)');
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!Number.isInteger(maxPixels) || maxPixels < 1) throw rangeError('OUT_OF_RANGE', `maxPixels must be a positive integer, got ${maxPixels}`);
  checkSize('width', options.width);
  checkSize('height', options.height);
  const allowed = options.allowedFormats ?? DEFAULT_ALLOWED_FORMATS;
  const background = options.background ?? { r: 255, g: 255, b: 255 };

  // Header first: format and declared size, without decoding pixels.
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new RagdiffError('IMAGE_UNSUPPORTED', `not a decodable image: ${(e as Error).message}`, { cause: e });
  }
  const format = meta.format ?? 'unknown';
  if (!(allowed as readonly string[]).includes(format)) {
    throw new RagdiffError('IMAGE_UNSUPPORTED', `image format ${format} is not accepted (allowed: ${allowed.join(', ')})`);
  }
  // EXIF orientations 5..8 rotate by 90°, swapping the displayed width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  const w = (swap ? meta.height : meta.width) ?? 0;
  const h = (swap ? meta.width : meta.height) ?? 0;
  if (w < 1 || h < 1) throw new RagdiffError('IMAGE_CORRUPT', `image header declares an invalid size ${w}×${h}`);
  if (w * h > maxPixels) {
    throw new RagdiffError('IMAGE_TOO_LARGE', `image is ${w}×${h} = ${w * h} pixels, over the limit of ${maxPixels}`);
  }

  const targetW = options.width ?? w;
  const targetH = options.height ?? h;
  const resized = targetW !== w || targetH !== h;
  try {
    let img = sharp(input, { limitInputPixels: maxPixels, pages: 1, failOn: 'warning' })
      .rotate() // honour EXIF orientation
      .toColourspace('srgb')
      .flatten({ background });
    if (resized) img = img.resize(targetW, targetH, { fit: options.fit ?? 'cover', background, kernel: 'lanczos3' });
    const { data, info } = await img.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== targetW || info.height !== targetH) {
      throw new Error(`unexpected decoder output ${info.width}×${info.height}×${info.channels}`);
    }
    return {
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: targetW,
      height: targetH,
      source: { width: w, height: h, format, resized, hadAlpha: meta.hasAlpha ?? false, pages: meta.pages ?? 1 },
    };
  } catch (e) {
    throw new RagdiffError('IMAGE_CORRUPT', `image could not be decoded (${format} ${w}×${h}): ${(e as Error).message}`, { cause: e });
  }
}
