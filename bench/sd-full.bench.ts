/**
 * Full-size Stable Diffusion 1.5 (issue 20, "Full size"): the bundle that
 * tools/sd_fixtures/export_full.py writes (published SD 1.5 configuration, random
 * weights, fp32, UNet 3.4 GB in model.onnx_data). Times opening each session as the
 * pipeline opens it (src/models/session.ts), one CFG text encode, two UNet steps at
 * 512×512 (batch 2: uncond + cond) and one VAE decode, with the process's peak RSS;
 * then tries Pipeline.load + 2 steps and reports what happens.
 *
 *   /usr/bin/python3 tools/sd_fixtures/export_full.py --out /tmp/ragdiff-sd15-full
 *   RAGDIFF_SD_FULL=/tmp/ragdiff-sd15-full npm run bench sd-full
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { openSession } from '../src/models/session.js';
import { Pipeline } from '../src/pipeline/index.js';
import { writeResultsSection } from './results.js';

const dir = process.env.RAGDIFF_SD_FULL ?? '/tmp/ragdiff-sd15-full';
const rssMiB = () => process.resourceUsage().maxRSS / 1024;
const ms = (t0: number) => performance.now() - t0;
const f = (v: number, d = 0) => v.toFixed(d);

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(join(dir, 'unet', 'model.onnx'))) {
    console.log(`sd-full: no bundle at ${dir}; make one with tools/sd_fixtures/export_full.py --out ${dir} (needs ~10 GB free)`);
    return;
  }
  const exportStats = existsSync(join(dir, 'export_stats.json')) ? JSON.parse(readFileSync(join(dir, 'export_stats.json'), 'utf8')) : null;
  const rows: string[] = [];
  const open = async (part: string) => {
    const t0 = performance.now();
    const s = await openSession(join(dir, part, 'model.onnx'));
    const t = ms(t0);
    rows.push(`| open ${part} | ${f(t)} ms | ${f(rssMiB())} MiB |`);
    return s.session;
  };
  const te = await open('text_encoder');
  let t0 = performance.now();
  await te.run({ input_ids: new ort.Tensor('int64', new BigInt64Array(2 * 77).fill(49407n), [2, 77]) });
  rows.push(`| text encoder, batch 2 × 77 tokens | ${f(ms(t0))} ms | ${f(rssMiB())} MiB |`);
  const unet = await open('unet');
  const sample = new ort.Tensor('float32', randn(2 * 4 * 64 * 64, 1), [2, 4, 64, 64]);
  const ehs = new ort.Tensor('float32', randn(2 * 77 * 768, 2), [2, 77, 768]);
  const steps: number[] = [];
  for (const t of [951n, 901n]) {
    t0 = performance.now();
    await unet.run({ sample, timestep: new ort.Tensor('int64', BigInt64Array.of(t), [1]), encoder_hidden_states: ehs });
    steps.push(ms(t0));
  }
  rows.push(`| UNet step, 512×512, batch 2 (CFG) | ${steps.map((s) => f(s)).join(' / ')} ms | ${f(rssMiB())} MiB |`);
  const dec = await open('vae_decoder');
  t0 = performance.now();
  await dec.run({ latent_sample: new ort.Tensor('float32', randn(4 * 64 * 64, 3), [1, 4, 64, 64]) });
  rows.push(`| VAE decode 64×64 → 512×512 | ${f(ms(t0))} ms | ${f(rssMiB())} MiB |`);
  await Promise.all([te.release(), unet.release(), dec.release()]);

  let pipelineLine: string;
  try {
    t0 = performance.now();
    const p = await Pipeline.load(dir);
    const load = ms(t0);
    t0 = performance.now();
    const r = await p.generate({ prompt: 'a photo of an astronaut riding a horse on the moon', steps: 2, seed: 1 });
    pipelineLine = `Pipeline.load ${f(load)} ms; generate (2 steps, 512×512, CFG) ${f(ms(t0))} ms wall, ${r.images.length} image; peak RSS ${f(rssMiB())} MiB.`;
    await p.close();
  } catch (e) {
    pipelineLine = `Pipeline.load / generate on this bundle: \`${(e as Error).message.split('\n')[0]}\` (the runner of this build does not read it yet).`;
  }

  const ex = exportStats
    ? Object.entries(exportStats.parts as Record<string, { export_s: number; params: number; bytes: number; peak_rss_mib_so_far: number }>)
      .map(([k, v]) => `| export ${k} | ${v.export_s} s | ${(v.params / 1e6).toFixed(1)} M params, ${(v.bytes / 2 ** 30).toFixed(2)} GiB | ${v.peak_rss_mib_so_far} MiB |`).join('\n')
    : '| export | (no export_stats.json) | | |';
  const md = `Bundle: \`${dir}\` from \`tools/sd_fixtures/export_full.py\` — SD 1.5's published configuration, random weights, float32, ` +
    `UNet in model.onnx + model.onnx_data; ONNX Runtime CPU, sessions opened as the pipeline opens them (graph optimisation "all").

| export (PyTorch ${exportStats?.torch ?? '?'}, opset 17) | time | size | peak RSS of the export process |
|---|---|---|---|
${ex}

| ONNX Runtime | time | peak RSS so far |
|---|---|---|
${rows.join('\n')}

${pipelineLine}

fp16: not produced — torch 1.13 cannot trace fp16 convolutions on CPU (\`slow_conv2d_cpu\` has no Half kernel) and no fp32→fp16 graph converter (onnxconverter-common) is installed; optimum exports fp16 on CUDA. SDXL's UNet (2.57 B parameters, 10.3 GB in fp32) is not exported here: tracing it needs the weights plus a traced copy (> 20 GB) on a 24 GB machine shared by several sessions.`;
  console.log(md);
  writeResultsSection('Full-size SD 1.5 (random weights)', md, `RAGDIFF_SD_FULL=${dir} npm run bench sd-full`);
}

await main();
