/**
 * Makes a conversion's output directory a loadable bundle: every file of the source bundle is
 * hard-linked in (weights are shared, never copied; the converter already requires the same
 * filesystem), and model_index.json is rewritten with the variant declared where the pipeline
 * looks for it (ragdiff.variants.<name>.path, src/pipeline/bundle.ts). Files the conversion wrote
 * itself are kept. The source bundle is never written to.
 */
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { RagdiffError } from '../errors.js';

/** `keep`: paths (relative) the conversion wrote; any other file already at a source path is stale (an earlier output) and is replaced. */
function linkTree(src: string, out: string, root: string, keep: ReadonlySet<string>): void {
  mkdirSync(out, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const s = join(src, e.name);
    const o = join(out, e.name);
    const rel = relative(root, s).split('\\').join('/');
    if (e.isDirectory()) linkTree(s, o, root, keep);
    else if (e.isFile() && rel !== 'model_index.json' && !keep.has(rel)) {
      if (existsSync(o)) {
        if (statSync(o).ino === statSync(s).ino) continue;
        rmSync(o);
      }
      try {
        linkSync(s, o);
      } catch (err) {
        throw new RagdiffError('OUTPUT_NOT_WRITABLE', `cannot hard-link ${s} into ${out} (${(err as Error).message}); write the output on the same filesystem (weights are shared, never copied)`, { cause: err });
      }
    }
  }
}

/**
 * Links `bundle`'s files into `outDir` and declares `variants` (e.g. { reference_attention: { path: 'unet/refattn.onnx' } })
 * in its model_index.json, with the source's `family`: a `ragdiff` block without one reads as tiny-emoji (families/detect.ts).
 */
export function completeBundle(bundle: string, outDir: string, variants: Record<string, { path: string }>, family: string): void {
  const indexPath = join(bundle, 'model_index.json');
  if (!existsSync(indexPath)) throw new RagdiffError('MODEL_FILE_MISSING', `${bundle}: no model_index.json (an optimum ONNX export is expected)`);
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as Record<string, unknown>;
  linkTree(resolve(bundle), resolve(outDir), resolve(bundle), new Set(Object.values(variants).map((v) => v.path)));
  const block = (index.ragdiff && typeof index.ragdiff === 'object' ? index.ragdiff : {}) as Record<string, unknown>;
  const had = (block.variants && typeof block.variants === 'object' ? block.variants : {}) as Record<string, unknown>;
  index.ragdiff = { family, ...block, variants: { ...had, ...variants } };
  const out = join(outDir, 'model_index.json');
  writeFileSync(`${out}.partial`, JSON.stringify(index, null, 2) + '\n');
  renameSync(`${out}.partial`, out);
}
