/**
 * The server's safety seam. The server enforces exactly the hooks a
 * RagPipeline takes (`RagSafety`: what `SafetyGuard.ragOptions()` returns) —
 * the reference screen, the prompt screen (which also checks a text
 * `retrieval.query`), the output screen, the per-source cap and the policy
 * stamp — through the same RagPipeline code the library and the CLI run. It
 * adds nothing of its own: each hook is wrapped only to count its decisions in
 * ragdiff_screening_decisions_total.
 */
import { typeError } from '../errors.js';
import type { RagPipeline, RagSafety } from '../rag/index.js';
import type { ServerMetrics } from './metrics.js';

export type { RagSafety };

/** Wraps a hook so every call is counted under `stage` (a throwing hook counts as a refusal, as the rag layer treats it). */
function counted<A extends unknown[], V extends { allow: boolean }>(fn: (...a: A) => V | Promise<V>, stage: string, metrics: ServerMetrics): (...a: A) => Promise<V> {
  return async (...a) => {
    try {
      const v = await fn(...a);
      metrics.screening.inc({ stage, decision: v.allow ? 'allow' : 'refuse' });
      return v;
    } catch (e) {
      metrics.screening.inc({ stage, decision: 'refuse' });
      throw e;
    }
  };
}

/** The same hooks, each decision counted; the source cap and the policy stamp pass through unchanged. */
export function countedSafety(hooks: RagSafety, metrics: ServerMetrics): RagSafety {
  return {
    ...hooks,
    ...(hooks.screen ? { screen: counted(hooks.screen, 'reference', metrics) } : {}),
    ...(hooks.promptScreen ? { promptScreen: counted(hooks.promptScreen, 'prompt', metrics) } : {}),
    ...(hooks.outputScreen ? { outputScreen: counted(hooks.outputScreen, 'output', metrics) } : {}),
  };
}

/**
 * The one set of hooks the server enforces: `safety` when given, else the ones
 * `rag` was built with. Giving both is refused rather than merged (two
 * policies would be ambiguous about which one a response reports).
 */
export function safetyOf(rag: RagPipeline, safety: RagSafety | undefined): RagSafety {
  const own = rag.safety;
  if (safety === undefined) return own;
  if (typeof safety !== 'object' || safety === null) throw typeError('INVALID_TYPE', 'createServer: options.safety must be an object of RagPipeline safety hooks (e.g. guard.ragOptions())');
  if (Object.keys(own).length > 0) throw typeError('INVALID_ARGUMENT', 'createServer: options.rag already has safety hooks; give them once (either in the RagPipeline or as options.safety)');
  return safety;
}
