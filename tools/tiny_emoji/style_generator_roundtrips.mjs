// Generator round-trips for the style classifier (tools/tiny_emoji/style_classifier.py --gen-strengths):
// each listed emoji image goes through the tiny-emoji generator itself as image-to-image (SDEdit: the
// image's VAE latent noised to `strength`, then the last steps x strength DDIM steps of the ordinary
// 25-step sampling with the emoji's name as the prompt and the default guidance), so both styles reach
// the classifier in the generator's own output domain (its colours, softness and CFG saturation) and
// that domain stops being a cue for either class. Written once, cached; skips images already there.
//   nice -n 19 node tools/tiny_emoji/style_generator_roundtrips.mjs LIST.json OUT_DIR STRENGTH [SHARD/SHARDS]
// LIST.json (written by style_classifier.py): [{ "file": absolute png path, "prompt": name }, ...]
// Output: OUT_DIR/<row index, 5 digits>.png, seed 30000 + row index (never an evaluation or calibration seed).
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline } from '../../dist/src/pipeline/index.js';

const [listPath, outDir, strengthArg, shardArg = '0/1'] = process.argv.slice(2);
if (!listPath || !outDir || !strengthArg) {
  console.error('usage: style_generator_roundtrips.mjs LIST.json OUT_DIR STRENGTH [SHARD/SHARDS]');
  process.exit(2);
}
const strength = Number(strengthArg);
if (!(strength > 0 && strength <= 1)) throw new RangeError(`strength must be in (0, 1], got ${strengthArg}`);
const [shard, shards] = shardArg.split('/').map(Number);
const rows = JSON.parse(readFileSync(listPath, 'utf8'));
mkdirSync(outDir, { recursive: true });
const pipeline = await Pipeline.load(new URL('../../models/tiny-emoji', import.meta.url).pathname);
const t0 = Date.now();
let made = 0;
for (let i = shard; i < rows.length; i += shards) {
  const file = join(outDir, `${String(i).padStart(5, '0')}.png`);
  if (existsSync(file)) continue;
  const r = await pipeline.generate({ prompt: rows[i].prompt, initImage: readFileSync(rows[i].file), strength, seed: 30000 + i, steps: 25 });
  writeFileSync(file + '.tmp', r.images[0].png);
  renameSync(file + '.tmp', file);                  // a killed run never leaves a truncated PNG behind
  if (++made % 200 === 0) console.log(`${made} made (${((Date.now() - t0) / made).toFixed(0)} ms each)`);
}
await pipeline.close();
console.log(`done: ${made} made in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
