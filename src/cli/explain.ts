/**
 * `ragdiff explain <png> [--json]`: what made an image — its generation
 * parameters and the references that shaped it — read back from the PNG's
 * `ragdiff` chunk. A PNG without one (not made by ragdiff, or stripped) is an
 * error with code NO_PROVENANCE.
 */
import type { Command } from 'commander';
import { readProvenance, type ExplainedImage, type ReferenceUse } from '../rag/index.js';
import { readInputFile } from './input-file.js';
import { runAction } from './options.js';
import { referenceJson, referencesText } from './retrieval.js';

/** The parameters worth a line each, in reading order (the rest follow). */
const FIRST = ['prompt', 'negativePrompt', 'steps', 'sampler', 'karras', 'guidanceScale', 'guidance', 'seed', 'width', 'height', 'strength', 'model', 'modelHash', 'version'];

function explainText(file: string, e: ExplainedImage): string {
  const p = e.parameters;
  const keys = [...FIRST.filter((k) => k in p), ...Object.keys(p).filter((k) => !FIRST.includes(k)).sort()];
  const width = Math.max(...keys.map((k) => k.length));
  const lines = [file, 'parameters:'];
  for (const k of keys) {
    const v = p[k];
    if (v === '' || v === undefined) continue;
    lines.push(`  ${k.padEnd(width)}  ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  const prov = e.provenance;
  if (!prov) {
    lines.push('retrieval: none (generated without references)');
    return lines.join('\n');
  }
  const r = prov.retrieval as Partial<typeof prov.retrieval> & { retrieveOnly?: boolean };
  const parts = [
    `mode ${r.mode}`,
    r.k !== undefined ? `k ${r.k}` : '',
    r.scales ? `s_t ${r.scales.text}, s_r ${r.scales.retrieval}` : '',
    r.queryInFirstSlot ? 'query in first slot' : '',
    r.referenceInit ? `reference-init strength ${r.referenceInit.strength}, blend ${r.referenceInit.blend}` : '',
    r.reflective ? `reflective λ ${r.reflective.lambda}, draft ${r.reflective.draftSteps} steps` : '',
    r.retrieveOnly ? 'retrieved, not generated' : '',
  ].filter(Boolean);
  lines.push(`retrieval: ${parts.join('; ')}`);
  if (r.query) lines.push(`  query: ${r.query.kind}${r.query.text !== undefined ? ` ${JSON.stringify(r.query.text)}` : ''}`);
  if (r.store) lines.push(`  store: ${r.store.name} (encoder ${r.store.encoderId}, seq ${r.store.seq})`);
  if (r.skipped) lines.push(`  skipped: ${r.skipped}`);
  lines.push(referencesText(prov.references as ReferenceUse[]));
  return lines.join('\n');
}

async function explainCommand(file: string, o: { json?: boolean }): Promise<void> {
  const e = readProvenance(readInputFile(file, 'explain'));
  if (o.json) {
    const doc = {
      file,
      parameters: e.parameters,
      ...(e.provenance ? { retrieval: e.provenance.retrieval, references: (e.provenance.references as ReferenceUse[]).map(referenceJson) } : { retrieval: null, references: [] }),
    };
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
  } else {
    process.stdout.write(explainText(file, e) + '\n');
  }
}

export function registerExplainCommand(program: Command): void {
  program
    .command('explain')
    .description('print the parameters and the references (ids, sources, licences, attributions, scores) recorded in a ragdiff PNG')
    .argument('<png>', 'a PNG written by ragdiff')
    .option('--json', 'print them as JSON (errors as {"error": {code, name, message}})')
    .action((file: string, o: { json?: boolean }) => runAction(o, () => explainCommand(file, o)));
}
