/**
 * Poisoning defence at ingest (after BadRDM, which plants a few "toxicity
 * surrogate" images that trigger texts retrieve): a source that contributes
 * many near-identical images all close to a blocked concept is suspicious even
 * when no single image fires the concept rule.
 *
 * For each ingested image whose best concept score is above −nearConcept
 * (close to a concept, fired or not), the watch counts the earlier such images
 * of the same source within cos ≥ clusterCos of it; when the cluster reaches
 * maxCluster the poisoning rule fires (flag: reported; block: refused). The
 * state is in memory for the guard's lifetime (one ingest session), bounded
 * per source; it is not a scan of what a store already holds.
 */
import type { PolicyDocument } from './policy.js';
import type { RuleHit } from './rules.js';

const MAX_PER_SOURCE = 5000;

export interface SourceReport {
  source: string;
  /** Images of this source close to a concept. */
  nearConcept: number;
  /** Largest cluster of near-identical near-concept images seen. */
  largestCluster: number;
  /** Concepts the clustered images were close to. */
  concepts: string[];
  /** Images the poisoning rule fired on. */
  fired: number;
}

interface SourceState {
  vectors: Float32Array[];
  report: SourceReport;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export class ClusterWatch {
  private readonly sources = new Map<string, SourceState>();

  /** Checks one ingested image; returns the poisoning hit when the rule fires. */
  check(rule: NonNullable<PolicyDocument['poisoning']>, source: string, embedding: Float32Array, closest: { rule: string; score: number } | undefined): RuleHit | undefined {
    if (!closest || closest.score <= -rule.nearConcept) return undefined;
    let st = this.sources.get(source);
    if (!st) {
      st = { vectors: [], report: { source, nearConcept: 0, largestCluster: 0, concepts: [], fired: 0 } };
      this.sources.set(source, st);
    }
    let cluster = 1;
    for (const v of st.vectors) if (dot(v, embedding) >= rule.clusterCos) cluster++;
    st.report.nearConcept++;
    if (!st.report.concepts.includes(closest.rule)) st.report.concepts.push(closest.rule);
    if (st.vectors.length < MAX_PER_SOURCE) st.vectors.push(embedding);
    st.report.largestCluster = Math.max(st.report.largestCluster, cluster);
    if (cluster < rule.maxCluster) return undefined;
    st.report.fired++;
    return { rule: `poisoning:${source}`, score: cluster / rule.maxCluster - 1 + 1e-6, action: rule.action };
  }

  /** Sources with images close to a concept, most clustered first. */
  report(): SourceReport[] {
    return [...this.sources.values()].map((s) => ({ ...s.report, concepts: [...s.report.concepts] })).sort((a, b) => b.largestCluster - a.largestCluster);
  }

  reset(): void {
    this.sources.clear();
  }
}
