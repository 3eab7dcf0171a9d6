/**
 * `ragdiff convert reference-attention <bundle> --out DIR`: writes DIR/unet/refattn.onnx, the
 * bundle's UNet with reference attention (src/convert), sharing the UNet's weights by hard link, and
 * DIR/unet/ragdiff_convert.json recording the method and the base UNet's sha256 for provenance.
 * The source bundle is never written to.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { assertOutsideBundle, convertReferenceAttention } from '../convert/convert-unet.js';
import { RagdiffError } from '../errors.js';
import { runAction } from './options.js';

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function referenceAttentionCommand(bundle: string, o: { out?: string; json?: boolean }): Promise<void> {
  const unet = join(bundle, 'unet', 'model.onnx');
  if (!existsSync(unet)) throw new RagdiffError('MODEL_FILE_MISSING', `${bundle}: no unet/model.onnx (an optimum ONNX export is expected)`);
  const outDir = resolve(o.out ?? `${resolve(bundle)}-refattn`);
  assertOutsideBundle(outDir, bundle);
  mkdirSync(join(outDir, 'unet'), { recursive: true });
  const started = Date.now();
  const r = convertReferenceAttention({ unet, out: join(outDir, 'unet', 'refattn.onnx'), forbidInside: bundle });
  const manifest = {
    method: 'reference-attention',
    mechanism: 'community reference-only attention: self-attention of main rows over [own ; reference] with per-row weight',
    path: 'unet/refattn.onnx',
    inputs: ['sample', 'timestep', 'encoder_hidden_states (and every other batched input of the base UNet)', 'ref_sample [B,4,h,w]', 'ref_weight [B or 1]'],
    outputs: ['out_sample'],
    self_attention_blocks: r.selfAttentionBlocks,
    heads: r.heads,
    base_unet: { path: resolve(unet), sha256: await sha256(unet) },
  };
  const mPath = join(outDir, 'unet', 'ragdiff_convert.json');
  writeFileSync(`${mPath}.partial`, JSON.stringify(manifest, null, 2) + '\n');
  renameSync(`${mPath}.partial`, mPath);
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(o.json ? JSON.stringify({ ...manifest, out: r.out, seconds }, null, 2) + '\n'
    : `converted ${r.selfAttentionBlocks} self-attention blocks -> ${r.out} (${seconds.toFixed(1)} s; weights shared with ${unet})\n`);
}

export function registerConvertCommands(program: Command): void {
  const convert = program.command('convert').description('turn an ONNX Stable Diffusion export into a ragdiff retrieval variant (offline, no PyTorch; needs python3-onnx)');
  convert
    .command('reference-attention')
    .description('add reference attention (reference-only) to the bundle\'s UNet, found by structure; weights are shared, not copied')
    .argument('<bundle>', 'an optimum ONNX export (unet/model.onnx)')
    .option('--out <dir>', 'output directory, outside the source bundle (default <bundle>-refattn)')
    .option('--json', 'print the result as JSON')
    .action((bundle: string, o: { out?: string; json?: boolean }) => runAction(o, () => referenceAttentionCommand(bundle, o)));
}
