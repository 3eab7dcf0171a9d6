/**
 * Training-free reflective re-ranking (after RealRAG, which trains a retriever
 * with the generator's own outputs as negatives): a cheap draft is generated
 * without retrieval and embedded; candidates are re-ranked by
 *
 *   sim(query, ref) − λ · sim(draft, ref)
 *
 * so references close to the prompt but unlike what the generator already
 * makes — what it lacks — come first. This is not RealRAG's trained retriever.
 */
import { dot, type Candidate } from './references.js';

/** Re-scores and sorts the candidates (in place) and returns the top `k`. */
export function reflectiveRerank(candidates: Candidate[], draft: Float32Array, lambda: number, k: number): Candidate[] {
  for (const c of candidates) c.score = c.score - lambda * dot(draft, c.embedding);
  candidates.sort((a, b) => b.score - a.score);
  return candidates.slice(0, k);
}
