/**
 * `ragdiff convert reference-attention <bundle> --out DIR`: writes DIR/unet/refattn.onnx, the
 * bundle's UNet with reference attention (src/convert), sharing the UNet's weights by hard link, and
 * DIR/unet/ragdiff_convert.json recording the method and the base UNet's sha256 for provenance;
 * the rest of the bundle is hard-linked in and model_index.json declares the variant.
 * The source bundle is never written to.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { completeBundle } from '../convert/bundle-out.js';
import { assertOutsideBundle, convertIpAdapter, convertReferenceAttention } from '../convert/convert-unet.js';
import { readOnnxModel } from '../convert/onnx-model.js';
import { openSafetensors } from '../convert/safetensors.js';
import { RagdiffError } from '../errors.js';
import { readBundle } from '../pipeline/bundle.js';
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
  // the output is a bundle RagPipeline loads: the source's other files linked, the variant declared
  completeBundle(bundle, outDir, { reference_attention: { path: 'unet/refattn.onnx' } }, readBundle(bundle).family);
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(o.json ? JSON.stringify({ ...manifest, out: r.out, seconds }, null, 2) + '\n'
    : `converted ${r.selfAttentionBlocks} self-attention blocks -> ${r.out} (${seconds.toFixed(1)} s; weights shared with ${unet})\n`);
}

/** The vision tower's output width (its last output's last dimension), checked against the projection. */
function encoderWidth(dir: string): number | undefined {
  const path = join(dir, 'model.onnx');
  if (!existsSync(path)) throw new RagdiffError('MODEL_FILE_MISSING', `${dir}: no model.onnx (the CLIP vision tower's ONNX export)`);
  const outs = readOnnxModel(path).model.graph.output ?? [];
  const pick = outs.find((o) => o.name === 'image_embeds') ?? outs[0];
  const dims = (pick?.type as { tensor_type?: { shape?: { dim?: { dim_value?: string }[] } } } | undefined)?.tensor_type?.shape?.dim ?? [];
  const last = dims[dims.length - 1]?.dim_value;
  return last ? Number(last) : undefined;
}

async function ipAdapterCommand(bundle: string, o: { weights?: string; imageEncoder?: string; out?: string; json?: boolean }): Promise<void> {
  if (!o.weights) throw new RagdiffError('INVALID_ARGUMENT', '--weights FILE.safetensors is required');
  if (!o.imageEncoder) throw new RagdiffError('INVALID_ARGUMENT', '--image-encoder DIR is required (the CLIP vision tower export whose image_embeds the projection takes)');
  const unet = join(bundle, 'unet', 'model.onnx');
  const cfgPath = join(bundle, 'unet', 'config.json');
  if (!existsSync(unet) || !existsSync(cfgPath)) throw new RagdiffError('MODEL_FILE_MISSING', `${bundle}: no unet/model.onnx and unet/config.json (an optimum ONNX export is expected)`);
  const f = openSafetensors(o.weights);
  const proj = f.tensors.get('image_proj.proj.weight');
  f.close();
  const width = encoderWidth(o.imageEncoder);
  if (proj && width !== undefined && proj.shape[1] !== width) {
    throw new RagdiffError('WEIGHTS_MISMATCH', `the vision tower in ${o.imageEncoder} gives ${width}-wide embeddings but image_proj.proj.weight takes ${proj.shape[1]}`);
  }
  const outDir = resolve(o.out ?? `${resolve(bundle)}-ip-adapter`);
  assertOutsideBundle(outDir, bundle);
  const r = convertIpAdapter({ unet, config: JSON.parse(readFileSync(cfgPath, 'utf8')), weights: o.weights, outDir: join(outDir, 'unet'), forbidInside: bundle });
  const manifest = {
    method: 'ip-adapter',
    paths: { unet: 'unet/ip_adapter.onnx', image_proj: 'unet/image_proj.onnx', image_encoder: resolve(o.imageEncoder) },
    inputs: ['sample', 'timestep', 'encoder_hidden_states (and the base UNet\'s other inputs)', 'ip_tokens [B, T, cross_dim] from image_proj', 'ip_scale [B or 1]'],
    cross_attention_blocks: r.crossBlocks,
    cross_attention_dim: r.crossDim,
    base_unet: { path: resolve(unet), sha256: await sha256(unet) },
    adapter: { path: resolve(o.weights), sha256: await sha256(o.weights) },
  };
  const mPath = join(outDir, 'unet', 'ragdiff_convert_ip_adapter.json');
  writeFileSync(`${mPath}.partial`, JSON.stringify(manifest, null, 2) + '\n');
  renameSync(`${mPath}.partial`, mPath);
  process.stdout.write(o.json ? JSON.stringify({ ...manifest, out: outDir }, null, 2) + '\n' : `added IP-Adapter to ${r.crossBlocks} cross-attention blocks -> ${r.unet}, ${r.imageProj}\n`);
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
  convert
    .command('ip-adapter')
    .description('add IP-Adapter decoupled cross-attention (plain adapters) and its image projection; weights are shared, not copied')
    .argument('<bundle>', 'an optimum ONNX export (unet/model.onnx, unet/config.json)')
    .option('--weights <file>', 'the adapter, .safetensors (pickled .bin is refused)')
    .option('--image-encoder <dir>', 'the CLIP vision tower export (model.onnx) whose embeddings the projection takes')
    .option('--out <dir>', 'output directory, outside the source bundle (default <bundle>-ip-adapter)')
    .option('--json', 'print the result as JSON')
    .action((bundle: string, o: { weights?: string; imageEncoder?: string; out?: string; json?: boolean }) => runAction(o, () => ipAdapterCommand(bundle, o)));
}
