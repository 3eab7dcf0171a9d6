/**
 * What the command line needs from the safety module (`--policy FILE`): a
 * guard over the bundle's own encoders, a generator that screens the prompt
 * and every output, and the store hooks for `index add`. Decisions are logged
 * to $RAGDIFF_AUDIT_LOG when it is set.
 */
import { loadClipEncoders, type ClipEncoders } from '../models/encoders.js';
import type { GenerateRequest, GenerateResult, Pipeline } from '../pipeline/index.js';
import { RagPipeline, type BlockedOutput } from '../rag/rag-pipeline.js';
import { SafetyGuard } from './guard.js';

export interface PolicyCli {
  guard: SafetyGuard;
  /** Plain generation through the prompt and output doors (the policy hash goes into each PNG). */
  generate(request: GenerateRequest): Promise<GenerateResult & { blocked?: BlockedOutput[] }>;
  /** One line per blocked output, for stderr. */
  describeBlocked(blocked: BlockedOutput[] | undefined): string[];
  close(): Promise<void>;
}

/** Loads the policy at `path` with the encoders of the bundle at `modelDir`. */
export async function policyForCli(path: string, modelDir: string, pipeline?: Pipeline): Promise<PolicyCli> {
  const encoder: ClipEncoders = await loadClipEncoders(modelDir);
  let guard: SafetyGuard;
  try {
    guard = await SafetyGuard.create(path, { encoder, audit: process.env.RAGDIFF_AUDIT_LOG ? { path: process.env.RAGDIFF_AUDIT_LOG } : false });
  } catch (e) {
    await encoder.close();
    throw e;
  }
  const rag = pipeline ? new RagPipeline(pipeline, guard.ragOptions()) : undefined;
  return {
    guard,
    generate: async (request) => {
      if (!rag) throw new Error('policyForCli: no pipeline given');
      // Without retrieval RagPipeline returns the pipeline's full result (stats included).
      return (await rag.generate(request)) as unknown as GenerateResult & { blocked?: BlockedOutput[] };
    },
    describeBlocked: (blocked) => (blocked ?? []).map((b) => `blocked: image ${b.index + 1} (seed ${b.seed}) by rule ${b.rule} (score ${b.score.toFixed(4)}), policy ${guard.stamp.version}`),
    close: async () => {
      guard.close();
      await encoder.close();
    },
  };
}
