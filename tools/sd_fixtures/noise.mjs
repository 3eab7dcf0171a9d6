// Writes ragdiff's own Gaussian noise stream (src/rng.ts NoiseGenerator: Philox4x32-10 +
// Box–Muller in the native addon) for one seed, so the oracles start from exactly the numbers
// the TypeScript pipeline draws: node tools/sd_fixtures/noise.mjs SEED COUNT OUT.bin
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const addon = createRequire(import.meta.url)(join(root, 'build', 'Release', 'ragdiff.node'));
const [seed, count, out] = process.argv.slice(2);
const buf = new Float32Array(Number(count));
addon.normalFill(Number(seed), 0, buf);
writeFileSync(out, Buffer.from(buf.buffer));
