/** Retrieval-augmented generation: the store's references joined to the pipeline, every mode of the literature, provenance on every image. */
export { RagPipeline } from './rag-pipeline.js';
export type { RagPipelineOptions, RagSafety, BlockedOutput } from './rag-pipeline.js';
export { RETRIEVAL_MODES } from './types.js';
export type {
  RagRequest, RagResult, RagImage, RetrievalOptions, RetrievalMode, ReferenceChoice, ReferenceSource, ReferenceUse, ReferenceUsage, RetrievalStats,
} from './types.js';
export type { ReferenceScreen, ReferenceVerdict, ScreenedReference, SafetyVerdict, PromptScreen, OutputScreen, PolicyStamp } from './screen.js';
export { readProvenance } from './provenance.js';
export type { ProvenanceRecord, ExplainedImage } from './provenance.js';
export { tokensPlan, mixturePlan, interleavedPlan, textCfgPlan, REMODIFFUSE_FINE, TOKEN_MODES } from './modes/index.js';
