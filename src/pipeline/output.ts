/**
 * Output PNGs (encoded in the worker, see png.ts) are tagged with the
 * generation parameters in the two forms other tools read: a `parameters` text
 * chunk in the A1111 layout, and a `ragdiff` chunk holding the same as JSON.
 * The Pipeline builds the text here and the worker writes it while encoding.
 */
import { readFileSync } from 'node:fs';
import { withPngText } from '../image/png-text.js';
import type { SamplerChoice } from './params.js';

let versionCache: string | undefined;
export function ragdiffVersion(): string {
  if (versionCache === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
      versionCache = pkg.version ?? 'unknown';
    } catch {
      versionCache = 'unknown';
    }
  }
  return versionCache;
}

export interface GenerationParameters {
  prompt: string;
  negativePrompt: string;
  steps: number;
  sampler: SamplerChoice;
  karras: boolean;
  guidanceScale: number;
  seed: number;
  width: number;
  height: number;
  model: string;
  /** Full hex sha256 of the bundle (see ModelRunner.hashBundle); shown shortened to 10 characters. */
  modelHash: string;
  strength?: number;
  /** Set when explicit guidance branches replaced classifier-free guidance. */
  guidance?: string;
  /** The caller's provenance record (e.g. the references retrieval used), as given. */
  provenance?: Record<string, unknown>;
}

const SAMPLER_LABEL: Record<SamplerChoice, string> = {
  ddim: 'DDIM',
  euler: 'Euler',
  'euler-ancestral': 'Euler a',
  'dpmpp-2m': 'DPM++ 2M',
  pndm: 'PNDM',
  lcm: 'LCM',
};

/** The A1111 "parameters" text: prompt, negative prompt, then one line of `Key: value` pairs. */
export function formatParameters(p: GenerationParameters): string {
  const lines = [p.prompt];
  if (p.negativePrompt) lines.push(`Negative prompt: ${p.negativePrompt}`);
  const fields: [string, string | number][] = [
    ['Steps', p.steps],
    ['Sampler', SAMPLER_LABEL[p.sampler]],
  ];
  if (p.karras) fields.push(['Schedule type', 'Karras']);
  fields.push(['CFG scale', p.guidanceScale], ['Seed', p.seed], ['Size', `${p.width}x${p.height}`],
    ['Model hash', p.modelHash.slice(0, 10)], ['Model', p.model]);
  if (p.strength !== undefined) fields.push(['Denoising strength', p.strength]);
  if (p.guidance) fields.push(['Guidance', p.guidance]);
  const refs = (p.provenance as { references?: unknown[] } | undefined)?.references;
  if (Array.isArray(refs)) fields.push(['References', refs.length]);
  fields.push(['Version', `ragdiff ${ragdiffVersion()}`]);
  const value = (v: string | number) => {
    const s = String(v);
    return /[,:\n"]/.test(s) ? JSON.stringify(s) : s;
  };
  lines.push(fields.map(([k, v]) => `${k}: ${value(v)}`).join(', '));
  return lines.join('\n');
}

/** The `parameters` (A1111 text) and `ragdiff` (JSON) text entries of an output PNG, in chunk order. */
export function parameterText(params: GenerationParameters): { parameters: string; ragdiff: string } {
  return {
    parameters: formatParameters(params),
    ragdiff: JSON.stringify({ ...params, version: ragdiffVersion() }),
  };
}

/**
 * Adds the parameter chunks to an already encoded PNG. The Pipeline does not
 * need it (the worker's encoder writes them, see Job.pngText); kept for PNGs
 * made elsewhere.
 */
export function tagPng(png: Uint8Array, params: GenerationParameters): Buffer {
  return withPngText(png, parameterText(params));
}
