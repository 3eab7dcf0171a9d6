/** Evaluation metrics for retrieval-augmented generation (issue 14); `npm run eval:rag` drives them. */
export { loadEmojiRecords, baseEmojiNames, defaultEmojiJson } from './emoji-names.js';
export type { EmojiRecord } from './emoji-names.js';
export { NameRanker, hitRate } from './recognition.js';
export type { RecognitionResult } from './recognition.js';
export { psnr8, foregroundPsnr8, foregroundOf, cosine, PixelDatabase, EmbeddingDatabase, copyGuard, NEAR_COPY_PSNR_DB, NEAR_WHITE_MIN } from './copy-guard.js';
export type { CopyGuardInput, CopyGuardItem, CopyGuardReport, Foreground } from './copy-guard.js';
export { signTest, signTestP, perPromptMeans, pairedSignTest } from './sign-test.js';
export type { SignTestResult } from './sign-test.js';
export { StyleClassifier, defaultStyleClassifierPath } from './style-classifier.js';
export type { StyleClassifierInfo, StyleResult } from './style-classifier.js';
export { requireSplit, requireSameEncoder, requireDisjointSeeds } from './guards.js';
export type { HeldOutSplit, EncoderIdentity } from './guards.js';
