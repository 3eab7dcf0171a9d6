/** How stored images and the references of a generation appear in JSON (with the URLs of their pixels). */
import type { ReferenceUse } from '../rag/index.js';
import type { QueryHit, StoredImage } from '../store/index.js';

export const imageUrl = (id: string) => `/v1/references/${encodeURIComponent(id)}/image`;
export const thumbnailUrl = (id: string) => `${imageUrl(id)}?size=128`;

export function storedView(im: StoredImage | QueryHit, screen?: { allow: boolean; reason?: string }) {
  return {
    id: im.id,
    name: im.name,
    source: im.source,
    licence: im.licence,
    attribution: im.attribution,
    ...('score' in im ? { score: Math.round(im.score * 1e4) / 1e4 } : {}),
    width: im.width,
    height: im.height,
    format: im.format,
    status: im.status,
    added_at: im.addedAt,
    image_url: imageUrl(im.id),
    thumbnail_url: thumbnailUrl(im.id),
    ...(screen ? { screen } : {}),
  };
}

export function useView(u: ReferenceUse) {
  return {
    ...u,
    score: Math.round(u.score * 1e4) / 1e4,
    influence: Math.round(u.influence * 1e4) / 1e4,
    ...(u.kind === 'stored' && u.id ? { image_url: imageUrl(u.id), thumbnail_url: thumbnailUrl(u.id) } : {}),
  };
}
