/**
 * `ragdiff kb build --prompts FILE --seeds N --out KB` (trajectory knowledge
 * bases for `ragdiff generate --kb KB`) and `ragdiff kb info KB`.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { Pipeline } from '../pipeline/pipeline.js';
import { SAMPLERS, type SamplerChoice } from '../pipeline/params.js';
import { buildKnowledgeBase } from '../trajectory/build.js';
import { KnowledgeBase } from '../trajectory/kb-file.js';
import { DEFAULT_MODEL_DIR } from './generate.js';
import { createProgress } from './progress.js';
import { readInputFile } from './input-file.js';
import { intOption, numberOption, runAction } from './options.js';

function intList(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) throw new InvalidArgumentError(`expected comma-separated step indices, got ${JSON.stringify(v)}`);
  return parts.map(Number);
}
function sampler(v: string): SamplerChoice {
  if (!(SAMPLERS as readonly string[]).includes(v)) throw new InvalidArgumentError(`sampler must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as SamplerChoice;
}

interface BuildCli {
  prompts: string;
  seeds: number;
  seedBase?: number;
  out: string;
  model: string;
  steps?: number;
  keyStep?: number;
  valueSteps?: number[];
  guidance?: number;
  negative?: string;
  sampler?: SamplerChoice;
  concurrency?: number;
  threads?: number;
  json?: boolean;
}

export function registerKbCommands(program: Command): void {
  const kb = program.command('kb').description('trajectory knowledge bases (ReDi): build, inspect');
  kb.command('build')
    .description('sample every prompt × seed in full and record its key / value latents into a knowledge base (appends when KB exists with the same settings)')
    .requiredOption('--prompts <file>', 'text file, one prompt per line')
    .requiredOption('--seeds <n>', 'seeds per prompt', intOption('seeds', 1))
    .requiredOption('--out <kb>', 'knowledge-base file')
    .option('--seed-base <n>', 'first seed (default 0)', intOption('seed-base', 0))
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('--steps <n>', 'denoising steps', intOption('steps', 1))
    .option('--key-step <n>', 'step index of the key latent (default steps / 5)', intOption('key-step', 1))
    .option('--value-steps <list>', 'step indices of the stored values, comma-separated (default steps / 2)', intList)
    .option('-g, --guidance <x>', 'classifier-free guidance scale', numberOption('guidance'))
    .option('-n, --negative <text>', 'negative prompt')
    .option('--sampler <name>', `sampler: ${SAMPLERS.join(', ')}`, sampler)
    .option('--concurrency <n>', 'inference workers', intOption('concurrency', 1))
    .option('--threads <n>', 'intra-op threads per model', intOption('threads', 1))
    .option('--json', 'print the result as JSON (errors as {"error": {code, name, message}})')
    .action((o: BuildCli) => runAction(o, async () => {
      const prompts = readInputFile(o.prompts, '--prompts').toString('utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
      const pipeline = await Pipeline.load(o.model, { concurrency: o.concurrency ?? 1, threads: o.threads });
      const bar = createProgress({ label: 'kb build', json: o.json });
      const t0 = performance.now();
      try {
        const r = await buildKnowledgeBase(pipeline, {
          prompts, seeds: o.seeds, seedBase: o.seedBase, out: o.out, steps: o.steps, keyStep: o.keyStep, valueSteps: o.valueSteps,
          guidanceScale: o.guidance, negativePrompt: o.negative, sampler: o.sampler,
          onProgress: (done, total) => bar.update(done, total, 'trajectories'),
        });
        bar.done();
        const seconds = (performance.now() - t0) / 1000;
        if (o.json) console.log(JSON.stringify({ ...r, seconds }, null, 2));
        else console.log(`${r.path}: ${r.added} trajectories added, ${r.count} in the base (${seconds.toFixed(1)} s)`);
      } finally {
        bar.done();
        await pipeline.close();
      }
    }));
  kb.command('info')
    .description('print a knowledge base header and size, and verify every checksum')
    .argument('<kb>', 'knowledge-base file')
    .option('--json', 'errors as {"error": {code, name, message}} on stdout too (the header is JSON already)')
    .action((path: string, o: { json?: boolean }) => runAction(o, async () => {
      const k = KnowledgeBase.open(path);
      try {
        k.verify();
        const { format: _f, ...h } = k.header;
        console.log(JSON.stringify({ ...h, trajectories: k.count, chunks: k.chunks.length, bytes: k.end }, null, 2));
      } finally {
        k.close();
      }
    }));
}
