/**
 * `ragdiff generate "<prompt>" -o file.png` and `ragdiff demo`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from 'commander';
import sharp, { type OverlayOptions } from 'sharp';
import { Pipeline, type PipelineOptions } from '../pipeline/pipeline.js';
import { SAMPLERS, type ProgressEvent, type SamplerChoice } from '../pipeline/params.js';
import { intOption, numberOption } from './options.js';
import { policyForCli } from '../safety/cli.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The embedded default bundle. */
export const DEFAULT_MODEL_DIR = join(packageRoot, 'models', 'tiny-emoji');

/**
 * Emoji names tiny-emoji draws recognisably (picked from a 45-name sweep; the bench
 * records the bundle-CLIP recognisability of both sets).
 */
export const DEMO_PROMPTS = ['grinning face', 'crying face', 'red heart', 'cat face', 'car', 'globe'];

function sampler(v: string): SamplerChoice {
  if (!(SAMPLERS as readonly string[]).includes(v)) throw new InvalidArgumentError(`sampler must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as SamplerChoice;
}

/** A one-line progress bar on a TTY (stderr); silent otherwise. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr, label = ''): { update(e: ProgressEvent): void; done(): void } {
  if (!stream.isTTY) return { update() {}, done() {} };
  let last = '';
  return {
    update(e) {
      const width = 30;
      const frac = e.total > 0 ? e.step / e.total : 0;
      const filled = Math.round(frac * width);
      const line = `${label}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(e.step).padStart(String(e.total).length)}/${e.total} ${e.stage}`;
      if (line !== last) stream.write(`\r${line}\x1b[K`);
      last = line;
    },
    done() {
      if (last) stream.write('\r\x1b[K');
      last = '';
    },
  };
}

function pipelineOptions(o: { providers?: string; threads?: number }): PipelineOptions {
  return {
    executionProviders: o.providers ? o.providers.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
    threads: o.threads,
  };
}

interface GenerateCliOptions {
  output: string;
  model: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  sampler?: SamplerChoice;
  negative?: string;
  batch?: number;
  initImage?: string;
  strength?: number;
  karras?: boolean;
  providers?: string;
  threads?: number;
  json?: boolean;
  policy?: string;
}

async function generateCommand(prompt: string, o: GenerateCliOptions): Promise<void> {
  const pipeline = await Pipeline.load(o.model, pipelineOptions(o));
  const safety = o.policy ? await policyForCli(o.policy, o.model, pipeline).catch(async (e) => { await pipeline.close(); throw e; }) : undefined;
  const bar = progressBar();
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    const r = await (safety ?? pipeline).generate({
      prompt,
      negativePrompt: o.negative,
      seed: o.seed,
      steps: o.steps,
      guidanceScale: o.guidance,
      sampler: o.sampler,
      batch: o.batch,
      karras: o.karras,
      initImage: o.initImage ? readFileSync(o.initImage) : undefined,
      strength: o.strength,
      onProgress: (e) => bar.update(e),
      signal: controller.signal,
    });
    bar.done();
    for (const line of safety?.describeBlocked((r as { blocked?: [] }).blocked) ?? []) console.error(line);
    if (safety && r.images.length === 0) process.exitCode = 1;
    const out = resolve(o.output);
    mkdirSync(dirname(out), { recursive: true });
    const paths = r.images.map((im, i) => {
      const p = r.images.length === 1 ? out : out.slice(0, out.length - extname(out).length) + `-${i + 1}${extname(out) || '.png'}`;
      writeFileSync(p, im.png);
      return p;
    });
    if (o.json) {
      console.log(JSON.stringify({ files: paths, seeds: r.images.map((i) => i.seed), parameters: r.parameters, stats: r.stats }, null, 2));
    } else {
      r.images.forEach((im, i) => console.log(`${paths[i]}  (${im.width}×${im.height}, seed ${im.seed})`));
      const t = r.stats.timings;
      const notes = [r.stats.prompt.truncated ? `prompt truncated to ${r.stats.prompt.maxTokens} tokens` : '', r.stats.initImage?.resized ? 'init image resized' : '']
        .filter(Boolean).join('; ');
      console.error(`${r.stats.stepsRun} steps × ${r.stats.branches} branch(es), ${r.stats.sampler}, ${(t.wallMs / 1000).toFixed(2)} s${notes ? ` (${notes})` : ''}`);
    }
  } finally {
    bar.done();
    process.off('SIGINT', onSigint);
    await safety?.close();
    await pipeline.close();
  }
}

interface DemoOptions {
  out: string;
  /** Prompts, one grid row each (default DEMO_PROMPTS). */
  prompt?: string[];
  model: string;
  steps?: number;
  seeds: number;
  providers?: string;
  threads?: number;
}

/** Generates `seeds` images for each demo prompt into `<out>/demo/`, plus a grid and an index page. */
export async function runDemo(o: DemoOptions, log: (s: string) => void = console.log): Promise<{ dir: string; grid: string; files: string[] }> {
  const dir = resolve(o.out, 'demo');
  mkdirSync(dir, { recursive: true });
  const pipeline = await Pipeline.load(o.model, pipelineOptions(o));
  const files: string[] = [];
  const rows: { prompt: string; pngs: Buffer[]; names: string[] }[] = [];
  const started = performance.now();
  try {
    for (const [i, prompt] of (o.prompt?.length ? o.prompt : DEMO_PROMPTS).entries()) {
      const bar = progressBar(process.stderr, `${prompt.padEnd(14)} `);
      const r = await pipeline.generate({ prompt, seed: 1, batch: o.seeds, steps: o.steps, onProgress: (e) => bar.update(e) });
      bar.done();
      const names = r.images.map((im) => `${String(i + 1).padStart(2, '0')}-${prompt.replace(/[^a-z0-9]+/gi, '-')}-seed${im.seed}.png`);
      r.images.forEach((im, j) => {
        writeFileSync(join(dir, names[j]!), im.png);
        files.push(join(dir, names[j]!));
      });
      rows.push({ prompt, pngs: r.images.map((im) => im.png), names });
      log(`  ${prompt}: ${r.images.length} images, ${(r.stats.timings.wallMs / 1000).toFixed(1)} s`);
    }
  } finally {
    await pipeline.close();
  }

  // Grid: one row per prompt, one column per seed, each image scaled ×2 (nearest) with a 4 px gutter.
  const { width, height } = pipeline.info.image;
  const scale = width <= 128 ? 2 : 1;
  const cw = width * scale;
  const ch = height * scale;
  const gap = 4;
  const cols = o.seeds;
  const composites: OverlayOptions[] = [];
  for (const [r, row] of rows.entries()) {
    for (const [c, png] of row.pngs.entries()) {
      const input = scale === 1 ? png : await sharp(png).resize(cw, ch, { kernel: 'nearest' }).png().toBuffer();
      composites.push({ input, left: gap + c * (cw + gap), top: gap + r * (ch + gap) });
    }
  }
  const grid = join(dir, 'grid.png');
  await sharp({ create: { width: gap + cols * (cw + gap), height: gap + rows.length * (ch + gap), channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .png()
    .toFile(grid);
  const html = `<!doctype html><meta charset="utf-8"><title>ragdiff demo</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}img{image-rendering:pixelated;width:${cw}px;height:${ch}px;margin:2px}td{padding:4px 12px 4px 0}</style>
<h1>ragdiff demo — ${pipeline.info.name}</h1><table>
${rows.map((r) => `<tr><td>${r.prompt}</td><td>${r.names.map((n) => `<img src="${n}" alt="${r.prompt}" title="${n}">`).join('')}</td></tr>`).join('\n')}
</table>\n`;
  writeFileSync(join(dir, 'index.html'), html);
  log(`demo: ${files.length} images for ${rows.length} prompts in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  log(`  images: ${dir}`);
  log(`  grid:   ${grid} (rows: ${rows.map((r) => r.prompt).join(' | ')})`);
  log(`  page:   ${join(dir, 'index.html')}`);
  return { dir, grid, files };
}

export function registerGenerateCommands(program: Command): void {
  program
    .command('generate')
    .description('generate an image from a text prompt')
    .argument('<prompt>', 'text prompt')
    .requiredOption('-o, --output <file>', 'output PNG (batches write file-1.png, file-2.png, …)')
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('-s, --seed <n>', 'random seed (integer; default random)', intOption('seed'))
    .option('--steps <n>', 'denoising steps (1..1000)', intOption('steps'))
    .option('-g, --guidance <x>', 'classifier-free guidance scale', numberOption('guidance'))
    .option('--sampler <name>', `sampler: ${SAMPLERS.join(', ')}`, sampler)
    .option('-n, --negative <text>', 'negative prompt')
    .option('-b, --batch <n>', 'images to generate (1..16)', intOption('batch'))
    .option('--init-image <file>', 'image-to-image: start from this image')
    .option('--strength <x>', 'image-to-image strength (0, 1]', numberOption('strength'))
    .option('--karras', 'Karras sigma spacing (sigma samplers)')
    .option('--providers <list>', 'ONNX Runtime execution providers, e.g. cuda,cpu')
    .option('--threads <n>', 'intra-op threads per model', intOption('threads'))
    .option('--json', 'print files, parameters and stats as JSON')
    .option('--policy <file>', 'safety policy JSON (e.g. policies/default.json): screens the prompt and every image; blocked images are not written')
    .action(generateCommand);

  program
    .command('demo')
    .description('generate a grid of tiny-emoji images for a few prompts into <out>/demo/')
    .option('--out <dir>', 'output directory', 'out')
    .option('-m, --model <dir>', 'model bundle directory', DEFAULT_MODEL_DIR)
    .option('--steps <n>', 'denoising steps', intOption('steps'))
    .option('--seeds <n>', 'images per prompt (1..16)', intOption('seeds'), 4)
    .option('-p, --prompt <text...>', 'prompts, one row each (default: the demo set)')
    .option('--providers <list>', 'ONNX Runtime execution providers, e.g. cuda,cpu')
    .option('--threads <n>', 'intra-op threads per model', intOption('threads'))
    .action(async (o: DemoOptions) => {
      await runDemo(o);
    });
}
