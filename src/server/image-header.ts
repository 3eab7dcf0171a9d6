/**
 * One pixel limit for every image a client sends — an uploaded reference and a
 * pinned base64 one alike (`limits.uploadPixels`) — checked from the header
 * before anything decodes it. Over the limit is 413 IMAGE_TOO_LARGE, as
 * everywhere else in ragdiff (decodeImage), a header so large that sharp's own
 * cap would refuse to read it (a 50000² PNG bomb) included.
 */
import sharp from 'sharp';
import { HttpError } from './errors.js';

/** `what` names the image in messages ("the file", "retrieval.references[0]"). */
export async function checkImageHeader(bytes: Uint8Array, maxPixels: number, what: string): Promise<void> {
  let width = 0;
  let height = 0;
  try {
    // Header only; limitInputPixels: false so a huge declared size is read (and refused below), not mistaken for a non-image.
    const meta = await sharp(bytes, { pages: 1, limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  } catch {
    throw new HttpError('NOT_AN_IMAGE', `${what} is not an image this server can read (PNG, JPEG, WebP, GIF, AVIF, TIFF)`);
  }
  if (width * height > maxPixels) throw new HttpError('IMAGE_TOO_LARGE', `${what} is ${width}×${height} = ${width * height} pixels; the limit is ${maxPixels}`);
}
