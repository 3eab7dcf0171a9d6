/**
 * The identity of a bundle's CLIP-style encoder pair: `<name>@<16 hex>` over
 * the image and text encoder bytes. A store records the id of the encoder that
 * embedded it, so a pipeline can tell, without opening a session, whether a
 * store's embeddings are the ones its image_proj was trained on.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

/** The encoder id of the bundle at `dir`, or null when it has no image or text encoder. */
export function clipEncoderId(dir: string): string | null {
  const root = resolve(dir);
  const imagePath = join(root, 'image_encoder', 'model.onnx');
  const textPath = join(root, 'text_encoder', 'model.onnx');
  if (!existsSync(imagePath) || !existsSync(textPath)) return null;
  let name = basename(root);
  try {
    const index = JSON.parse(readFileSync(join(root, 'model_index.json'), 'utf8')) as { ragdiff?: { name?: unknown } };
    if (typeof index.ragdiff?.name === 'string') name = index.ragdiff.name;
  } catch {
    // no or unreadable model_index.json: the folder name, as the encoder loader does
  }
  const hash = createHash('sha256');
  hash.update(readFileSync(imagePath));
  hash.update(readFileSync(textPath));
  return `${name}@${hash.digest('hex').slice(0, 16)}`;
}
