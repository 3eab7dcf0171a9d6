/**
 * The server's safety seam. The safety module (src/safety, separate work)
 * provides the policies; the server only calls them and reports:
 * - `screen`: the retrieval layer's ReferenceScreen (every retrieved, pinned
 *   or uploaded reference passes it before reaching a model);
 * - `promptScreen`: checks a prompt before any work;
 * - `policyHash`: identifies the policy in responses, /healthz and the page.
 * Every decision is counted in ragdiff_screening_decisions_total.
 */
import type { ReferenceScreen, ReferenceVerdict } from '../rag/index.js';
import type { ServerMetrics } from './metrics.js';

export type PromptVerdict = ReferenceVerdict;
export type PromptScreen = (prompt: string) => PromptVerdict | Promise<PromptVerdict>;

export interface SafetyHooks {
  screen?: ReferenceScreen;
  promptScreen?: PromptScreen;
  policyHash?: string;
}

/** The reference screen with its decisions counted (a throwing screen counts as a refusal, as the rag layer treats it). */
export function countedScreen(screen: ReferenceScreen, metrics: ServerMetrics): ReferenceScreen {
  return async (ref) => {
    try {
      const v = await screen(ref);
      metrics.screening.inc({ stage: 'reference', decision: v.allow ? 'allow' : 'refuse' });
      return v;
    } catch (e) {
      metrics.screening.inc({ stage: 'reference', decision: 'refuse' });
      throw e;
    }
  };
}

/** Runs the prompt screen (a throw refuses). */
export async function checkPrompt(screen: PromptScreen | undefined, prompt: string, metrics: ServerMetrics): Promise<PromptVerdict | undefined> {
  if (!screen) return undefined;
  let v: PromptVerdict;
  try {
    v = await screen(prompt);
  } catch (e) {
    v = { allow: false, reason: `the prompt screen failed: ${(e as Error)?.message ?? String(e)}` };
  }
  metrics.screening.inc({ stage: 'prompt', decision: v.allow ? 'allow' : 'refuse' });
  return v;
}
