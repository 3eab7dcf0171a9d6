/** The image store: reference images with provenance, embedded, indexed and persisted. */
export { ImageStore, IMAGE_EXTENSIONS } from './store.js';
export type {
  ImageStoreOptions, StoredImage, QueryHit, QueryRequest, AddInput, AddStatus, AddItemResult, AddReport, AddProgress,
  AddOptions, AddUrlOptions, RebuildOptions, RebuildReport, ReferenceEmbedding, StoreStats, ImageMeta, ImageStatus,
} from './store.js';
export type { ReferenceStore, Awaitable, ListOptions as StoreListOptions } from './reference-store.js';
export { openReferenceStore, type OpenReferenceStoreOptions } from './open.js';
export { PgReferenceStore, type PgStoreOptions } from './pg/store.js';
export { isPostgresUrl } from './pg/connect.js';
export type { ImageScreen, ScreenVerdict, ScreenCandidate, ImagePurpose } from './gate.js';
export { normaliseEmbedding } from './gate.js';
export type { HnswParams } from './vectors.js';
export { openDemoStore, demoInputs, defaultCacheDir, DEFAULT_ENCODER_DIR } from './demo.js';
export type { DemoStoreOptions, DemoDataset } from './demo.js';
export { perceptualHash, hashDistance } from './phash.js';
export { loadClipEncoders, ClipEncoders } from '../models/encoders.js';
export type { ImageTextEncoder, RgbImage, ClipEncoderOptions } from '../models/encoders.js';
export { fetchImage } from '../net/fetch.js';
export type { FetchImageOptions, FetchedImage, Resolver, Connector, ConnectTarget } from '../net/fetch.js';
