/** Safety at every door: operator policies enforced at ingest, retrieval, uploads, the prompt and the output, with an audit log. */
export { SafetyGuard } from './guard.js';
export type { SafetyGuardOptions, GuardRagOptions } from './guard.js';
export { loadPolicy, resolveAnchorPath } from './load.js';
export type { SafetyPolicy, CompiledConcept, LoadPolicyOptions } from './load.js';
export { validatePolicy, PolicyError, SAFETY_DOORS, canonicalJson } from './policy.js';
export type { PolicyDocument, ConceptRule, HashRule, SafetyAction, SafetyDoor } from './policy.js';
export { conceptHits, metaHits, hashHits, decide, promptWindows } from './rules.js';
export type { RuleHit, SafetyDecision } from './rules.js';
export { AuditLog } from './audit.js';
export type { AuditEntry, AuditLogOptions } from './audit.js';
export type { SourceReport } from './poisoning.js';
