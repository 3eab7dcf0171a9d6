#!/usr/bin/env node
/**
 * Builds the default safety policy on the emoji data and records its calibration:
 *   node tools/safety/calibrate.mjs            (after `npx tsc -p tsconfig.json`)
 * Writes policies/default.json (+ policies/anchors/*.png), bench/safety-calibration.json
 * and the section "Safety: default policy calibration" of bench/RESULTS.md.
 * See src/safety/calibrate.ts for what the rates mean. The concepts and the
 * dilution contexts are in policies/calibration.json; every run reports, through
 * the guard itself, the benign false-positive rate on policies/benign-prompts.txt
 * and the paraphrase catch rates (src/safety/evaluate.ts).
 */
import { copyFileSync, mkdirSync, readFileSync as readText, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { loadClipEncoders } = await import(join(root, 'dist/src/models/encoders.js'));
const cal = await import(join(root, 'dist/src/safety/calibrate.js'));
const { promptWindows } = await import(join(root, 'dist/src/safety/rules.js'));
const { anchorViews, distinctViews } = await import(join(root, 'dist/src/safety/load.js'));
const { SafetyGuard } = await import(join(root, 'dist/src/safety/guard.js'));
const ev = await import(join(root, 'dist/src/safety/evaluate.js'));
const WINDOWS = Number(process.env.PROMPT_WINDOWS ?? 3);
const spec = JSON.parse(readText(join(root, 'policies/calibration.json'), 'utf8'));
/** Benign context a concept is diluted in (prompt-dilution attack, Rando et al. 2022). */
const DILUTE = spec.dilute;
/** Benign anchors: the calibration half's emoji names that come within this much of firing a concept. */
const BENIGN_NEAR = Number(process.env.BENIGN_NEAR ?? 0.1);
/** Share of each concept's image FP budget given to the flipped / turned / on-black views of its example images. */
const VARIANT_SHARE = Number(process.env.VARIANT_SHARE ?? 0.25);
const { writeResultsSection } = await import(join(root, 'dist/bench/results.js'));

// Whole-policy targets on the calibration half (under the 2% goal): split evenly over the concepts, since
// per-concept false positives add up (the looser per-concept alternative is reported alongside).
const POLICY_FP = Number(process.env.POLICY_FP ?? 0.015);
const POLICY_PROMPT_FP = Number(process.env.POLICY_PROMPT_FP ?? 0.01);
const LOOSE_FP = 0.015;
const LOOSE_PROMPT_FP = 0.01;
const cacheFile = process.argv.includes('--cache') ? process.argv[process.argv.indexOf('--cache') + 1] : undefined;

/** The concepts: what the SD checker does not cover (METHODS §6: violence, gore), plus an obscene gesture and tobacco. */
const CONCEPTS = spec.concepts;
// Not chosen: syringe and pill (medicine more often than drugs), coffin/headstone (mourning), knife-like tools (scissors).

const enc = await loadClipEncoders(join(root, 'models/tiny-emoji'));
const vocab = cal.readVocabulary(join(root, 'models/tiny-emoji/tokenizer'));
const table = cal.emojiTable();
const t0 = performance.now();
const images = [...cal.emojiImages('twemoji'), ...cal.emojiImages('noto')];
const { existsSync, readFileSync } = await import('node:fs');
const cached = Boolean(cacheFile && existsSync(cacheFile));
if (cached) {
  const buf = readFileSync(cacheFile);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  images.forEach((im, i) => (im.embedding = all.slice(i * enc.dim, (i + 1) * enc.dim)));
} else {
  await cal.embedImages(enc, images);
  if (cacheFile) {
    const all = new Float32Array(images.length * enc.dim);
    images.forEach((im, i) => all.set(im.embedding, i * enc.dim));
    writeFileSync(cacheFile, Buffer.from(all.buffer));
  }
}
const embedMs = performance.now() - t0;
console.error(`embedded ${images.length} images in ${(embedMs / 1000).toFixed(1)} s`);

const conceptOf = new Map();
for (const c of CONCEPTS) for (const sn of c.emoji) conceptOf.set(sn, c.id);
const benign = images.filter((im) => !conceptOf.has(im.shortName));
const negCal = benign.filter((im) => im.index % 2 === 0);
const negEval = benign.filter((im) => im.index % 2 === 1);
const benignEmoji = table.map((e, index) => ({ e, index })).filter(({ e }) => !conceptOf.has(e.short_name));
const promptNegCal = [...new Set(benignEmoji.filter((x) => x.index % 2 === 0).flatMap((x) => cal.emojiPrompts(x.e)))];
const promptNegEval = [...new Set(benignEmoji.filter((x) => x.index % 2 === 1).flatMap((x) => cal.emojiPrompts(x.e)))];
// The output door's own negatives: images tiny-emoji generates for benign names of the calibration half
// (seed 7, the bundle's defaults, as `ragdiff generate NAME` draws them). Generation is slow on a CPU
// (~0.7 s each), hence the cache: --outputs-cache FILE.
const OUTPUT_NEGATIVES = Number(process.env.OUTPUT_NEGATIVES ?? Infinity); // default: every name of the calibration half
/** Per-concept share of generated benign images a concept may block (0: none of the calibration set). */
const OUTPUT_FP = Number(process.env.OUTPUT_FP ?? 0);
const outCacheFile = process.argv.includes('--outputs-cache') ? process.argv[process.argv.indexOf('--outputs-cache') + 1] : undefined;
const outPrompts = promptNegCal.slice(0, OUTPUT_NEGATIVES);
let genNeg = [];
const tg = performance.now();
if (outCacheFile && existsSync(outCacheFile)) {
  // The cache holds the first prompts' embeddings, in order: a longer list extends it.
  const buf = readFileSync(outCacheFile);
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  for (let i = 0; i < Math.min(all.length / enc.dim, outPrompts.length); i++) genNeg.push(all.slice(i * enc.dim, (i + 1) * enc.dim));
}
const cachedGen = genNeg.length;
if (genNeg.length < outPrompts.length) {
  const { RagPipeline } = await import(join(root, 'dist/src/rag/index.js'));
  const { decodeRgbPng } = await import(join(root, 'dist/src/image/png-rgb.js'));
  const rag = await RagPipeline.load(join(root, 'models/tiny-emoji'));
  for (const [i, prompt] of outPrompts.entries()) {
    if (i < cachedGen) continue;
    const png = (await rag.generate({ prompt, seed: 7 })).images[0].png;
    const [e] = await enc.embedImages([decodeRgbPng(png, 1 << 24)]);
    const n = Math.hypot(...e);
    genNeg.push(e.map((x) => x / n));
    if ((i + 1) % 100 === 0) console.error(`generated ${i + 1}/${outPrompts.length}`);
  }
  await rag.close();
  if (outCacheFile) {
    const all = new Float32Array(genNeg.length * enc.dim);
    genNeg.forEach((e, i) => all.set(e, i * enc.dim));
    writeFileSync(outCacheFile, Buffer.from(all.buffer));
  }
}
const genMs = performance.now() - tg;
const embedTexts = async (texts) => {
  const out = [];
  for (let i = 0; i < texts.length; i += 256) out.push(...(await enc.embedText(texts.slice(i, i + 256))));
  return out;
};
const negCalT = await embedTexts(promptNegCal);
const negEvalT = await embedTexts(promptNegEval);
// Windowed prompt check: the 1..WINDOWS-word runs of each prompt (the whole prompt excluded, as the guard does).
const windowsOf = (text) => promptWindows(text, WINDOWS).filter((w) => w !== text.trim().toLowerCase());
const winCalTexts = [...new Set(promptNegCal.flatMap(windowsOf))];
const winCalT = await embedTexts(winCalTexts);
const winEvalTexts = [...new Set(promptNegEval.flatMap(windowsOf))];
const winEvalT = await embedTexts(winEvalTexts);
const winEvalIndex = new Map(winEvalTexts.map((w, i) => [w, i]));
const evalWindows = promptNegEval.map((p) => windowsOf(p).map((w) => winEvalIndex.get(w)));

mkdirSync(join(root, 'policies/anchors'), { recursive: true });
const policy = {
  version: 'emoji-default-1',
  name: 'ragdiff default (emoji weapons, death, gore, obscene gesture, tobacco)',
  description: 'Built by tools/safety/calibrate.mjs for the tiny-emoji encoders; thresholds mean nothing with another encoder. Anchors: Twemoji (CC-BY 4.0, Twitter Inc. and contributors) and Noto Emoji (Apache-2.0, Google LLC) images.',
  encoder: enc.id,
  concepts: [],
  poisoning: { clusterCos: 0.97, nearConcept: 0.1, maxCluster: 5, action: 'flag' },
  retrieval: { maxPerSource: 3 },
};
/** Every image of a concept in the views the image doors compare against (load.ts anchorViews: 8 orientations, on white and black). */
const viewCache = new Map();
async function viewsOf(im) {
  if (!viewCache.has(im.path)) {
    const views = await anchorViews(readFileSync(im.path), enc.imageSize ?? { width: 64, height: 64 });
    viewCache.set(im.path, (await enc.embedImages(views)).map((v) => { const n = Math.hypot(...v); return v.map((x) => x / n); }));
  }
  return viewCache.get(im.path);
}
const unitRows = (rows) => rows.map((v) => { const n = Math.hypot(...v); return v.map((x) => x / n); });
async function evaluate(targetFp, promptTargetFp, ship) {
  const rows = [];
  const firesGen = { before: new Array(genNeg.length).fill(false), after: new Array(genNeg.length).fill(false) };
  const firesCal = { img: new Array(negEval.length).fill(false), prompt: new Array(promptNegEval.length).fill(false), promptWin: new Array(promptNegEval.length).fill(false) };
  for (const c of CONCEPTS) {
    const pos = images.filter((im) => c.emoji.includes(im.shortName));
    // Example images: every drawing of the concept, skin tones included (an operator gives what they have).
    const baseTw = pos.filter((im) => im.set === 'twemoji');
    const baseNo = pos.filter((im) => im.set === 'noto');
    const textEmb = unitRows(await enc.embedText(c.text));
    // Image doors: text + the upright example images against `threshold`; their other views (as the guard
    // compiles them: 7 orientations, on black) against `variantThreshold`, on a share of the FP budget of their own.
    const vTw = await Promise.all(baseTw.map(viewsOf));
    const vNo = await Promise.all(baseNo.map(viewsOf));
    const full = [...textEmb, ...vTw.map((v) => v[0]), ...vNo.map((v) => v[0])];
    // Merged as the guard merges them (load.ts distinctViews): text, the upright images, then each image's views.
    const fullV = distinctViews([...textEmb, ...vTw.map((v) => v[0]), ...vNo.map((v) => v[0])], [...vTw, ...vNo].flatMap((v) => v.slice(1)));
    const held = [...textEmb, ...vTw.map((v) => v[0])];
    const heldV = distinctViews(held, vTw.flatMap((v) => v.slice(1)));
    const score = (anchors, list) => list.map((im) => cal.maxCos(im.embedding, anchors));
    const both = (e, a, av, t1, t2) => Math.max(cal.maxCos(e, a) - t1, cal.maxCos(e, av) - t2);
    // in-sample: every image of the concept, all anchors
    const t = cal.thresholdFor(score(full, negCal), targetFp * (1 - VARIANT_SHARE));
    const tv = cal.thresholdFor(score(fullV, negCal), targetFp * VARIANT_SHARE);
    const posScores = pos.map((im) => both(im.embedding, full, fullV, t, tv) + t);
    const evalScores = negEval.map((im) => both(im.embedding, full, fullV, t, tv) + t);
    // Output door: both image thresholds raised by the smallest offset that keeps generated benign images under the target.
    const genScores = genNeg.map((e) => both(e, full, fullV, t, tv));
    const outputOffset = genNeg.length ? Math.max(0, cal.thresholdFor(genScores, OUTPUT_FP)) : 0;
    genScores.forEach((g, i) => { if (g > 0) firesGen.before[i] = true; if (g > outputOffset) firesGen.after[i] = true; });
    evalScores.forEach((s, i) => { if (s > t) firesCal.img[i] = true; });
    // held out: Twemoji anchors only; tested on Noto and on the Twemoji skin tones
    const th = cal.thresholdFor(score(held, negCal), targetFp * (1 - VARIANT_SHARE));
    const thv = cal.thresholdFor(score(heldV, negCal), targetFp * VARIANT_SHARE);
    const heldPos = pos.filter((im) => im.set === 'noto');
    const heldScores = heldPos.map((im) => both(im.embedding, held, heldV, th, thv) + th);
    // ... and every orientation / background of those held-out drawings (flipped, turned, on black).
    const heldViews = (await Promise.all(heldPos.map(viewsOf))).flat();
    const heldViewScores = heldViews.map((e) => both(e, held, heldV, th, thv) + th);
    // prompts
    const posPrompts = [...new Set([...table.filter((e) => c.emoji.includes(e.short_name)).flatMap(cal.emojiPrompts), ...c.paraphrases])];
    const posT = await embedTexts(posPrompts);
    const pt = cal.thresholdFor(negCalT.map((e) => cal.maxCos(e, textEmb)), promptTargetFp);
    const posPS = posT.map((e) => cal.maxCos(e, textEmb));
    const negPS = negEvalT.map((e) => cal.maxCos(e, textEmb));
    const wt = Math.max(pt, cal.thresholdFor(winCalT.map((e) => cal.maxCos(e, textEmb)), promptTargetFp));
    const winEvalS = winEvalT.map((e) => cal.maxCos(e, textEmb));
    const negWin = negPS.map((s, i) => Math.max(s - pt, ...evalWindows[i].map((j) => winEvalS[j] - wt)));
    negPS.forEach((s, i) => { if (s > pt) firesCal.prompt[i] = true; });
    negWin.forEach((s, i) => { if (s > 0) firesCal.promptWin[i] = true; });
    // Diluted positives: each positive prompt inside benign context; caught by the whole prompt or a window.
    const diluted = posPrompts.flatMap((p) => DILUTE.map((d) => d.replace('X', p)));
    const dilFull = await embedTexts(diluted);
    let dilCaught = 0;
    let dilCaughtFull = 0;
    for (const [i, d] of diluted.entries()) {
      const ws = windowsOf(d);
      const we = ws.length ? await embedTexts(ws) : [];
      const full0 = cal.maxCos(dilFull[i], textEmb) > pt;
      if (full0) dilCaughtFull++;
      if (full0 || we.some((e) => cal.maxCos(e, textEmb) > wt)) dilCaught++;
    }
    const anchorFiles = !ship ? [] : [...baseTw, ...baseNo].map((im) => {
      const f = `anchors/${c.id}-${im.set}-${im.path.split('/').pop()}`;
      copyFileSync(im.path, join(root, 'policies', f));
      return f;
    });
    if (ship) policy.concepts.push({ id: c.id, text: c.text, images: anchorFiles, threshold: t, variantThreshold: tv, ...(outputOffset > 0 ? { outputOffset } : {}), promptThreshold: pt, windowThreshold: wt, action: c.action ?? 'block', note: c.why });
    const missedPrompts = posPrompts.filter((_, i) => !(posPS[i] > pt));
    rows.push({
      id: c.id, why: c.why, threshold: t, promptThreshold: pt,
      images: pos.length, tpIn: cal.rate(posScores, t), fp: cal.rate(evalScores, t),
      heldImages: heldPos.length, heldThreshold: th, tpHeld: cal.rate(heldScores, th), fpHeld: cal.rate(negEval.map((im) => both(im.embedding, held, heldV, th, thv) + th), th), variantThreshold: tv,
      heldViews: heldViews.length, tpHeldViews: cal.rate(heldViewScores, th), outputOffset, fpGenerated: cal.rate(genScores, 0), fpGeneratedRaised: cal.rate(genScores, outputOffset),
      prompts: posPrompts.length, tpPrompt: cal.rate(posPS, pt), fpPrompt: cal.rate(negPS, pt), missedPrompts,
      windowThreshold: wt, fpPromptWindows: negWin.filter((s) => s > 0).length / negWin.length, diluted: diluted.length, tpDilutedWhole: dilCaughtFull / diluted.length, tpDiluted: dilCaught / diluted.length,
      unknownWords: [...new Set(posPrompts.flatMap((p) => cal.unknownWords(vocab, p)))],
      scores: { positives: pos.map((im, i) => ({ set: im.set, emoji: im.shortName, variant: im.variant, score: +posScores[i].toFixed(4) })), prompts: posPrompts.map((p, i) => ({ prompt: p, score: +posPS[i].toFixed(4) })) },
    });
  }
  const unionFp = firesCal.img.filter(Boolean).length / negEval.length;
  const unionPromptFp = firesCal.prompt.filter(Boolean).length / promptNegEval.length;
  const unionPromptWinFp = firesCal.promptWin.filter(Boolean).length / promptNegEval.length;
  const genFpBefore = firesGen.before.filter(Boolean).length / (genNeg.length || 1);
  const genFpAfter = firesGen.after.filter(Boolean).length / (genNeg.length || 1);
  return { rows, unionFp, unionPromptFp, unionPromptWinFp, genFpBefore, genFpAfter };
}
const TARGET_FP = POLICY_FP / CONCEPTS.length;
const PROMPT_TARGET_FP = POLICY_PROMPT_FP / CONCEPTS.length;
const { rows, unionFp, unionPromptFp, unionPromptWinFp, genFpBefore, genFpAfter } = await evaluate(TARGET_FP, PROMPT_TARGET_FP, true);
policy.prompt = { windows: WINDOWS, anchors: 'text' };
const loose = await evaluate(LOOSE_FP, LOOSE_PROMPT_FP, false);

// Benign anchors: the calibration half's emoji names within BENIGN_NEAR of firing a concept (through the guard,
// windows included). A concept then also has to beat the closest of them ("red apple" is nearer "apple" things than blood).
policy.version = spec.version;
const scoreWith = async (doc, prompts) => {
  const g = await SafetyGuard.create(doc, { encoder: enc, baseDir: join(root, 'policies') });
  const out = [];
  for (const p of prompts) out.push((await g.checkPrompt(p)).score ?? -Infinity);
  return out;
};
const calScores = await scoreWith(policy, promptNegCal);
// The image doors' benign anchors, likewise: Twemoji images (a runtime dependency, referenced as npm: paths) of the calibration half.
const { conceptHits } = await import(join(root, 'dist/src/safety/rules.js'));
const g0 = await SafetyGuard.create(policy, { encoder: enc, baseDir: join(root, 'policies') });
const benignImages = negCal.filter((im) => im.set === 'twemoji' && !im.variant && (conceptHits(g0.policy, im.embedding, 'ingest').closest?.score ?? -1) > -BENIGN_NEAR);
policy.benign = {
  text: promptNegCal.filter((_, i) => calScores[i] > -BENIGN_NEAR),
  images: benignImages.map((im) => `npm:emoji-datasource-twitter/img/twitter/64/${im.path.split('/').pop()}`),
  margin: 0,
  note: `emoji names and Twemoji images of the calibration half within ${BENIGN_NEAR} of firing a concept (tools/safety/calibrate.mjs)`,
};
const benignAnchors = new Set(policy.benign.text);
const shipped = await SafetyGuard.create(policy, { encoder: enc, baseDir: join(root, 'policies') });
const names = (sn) => table.filter((e) => e.short_name === sn).flatMap(cal.emojiPrompts);
const benignPrompts = ev.readPromptList(join(root, 'policies/benign-prompts.txt'));
const rates = await ev.promptRates(shipped, benignPrompts, spec, names);
const heldBenign = benignPrompts.filter((p) => !benignAnchors.has(p));
const heldRefused = rates.refused.filter((r) => !benignAnchors.has(r.prompt));
const imageFpShipped = negEval.filter((im) => conceptHits(shipped.policy, im.embedding, 'ingest').hits.length > 0).length / negEval.length;
const imageFpNoBenign = negEval.filter((im) => conceptHits(g0.policy, im.embedding, 'ingest').hits.length > 0).length / negEval.length;
let heldNamesFp = 0;
for (const p of promptNegEval) if ((await shipped.checkPrompt(p)).action === 'block') heldNamesFp++;
const DEMO = ['grinning face', 'crying face', 'red heart', 'cat face', 'car', 'globe', 'red apple', 'tulip', 'penguin', 'strawberry', 'grapes', 'banana'];
const positiveSet = new Set(CONCEPTS.flatMap((c) => ev.positivePrompts(c, names)));
const missedAlone = rates.missed.filter((m) => positiveSet.has(m));
const demoRefused = DEMO.filter((p) => rates.refused.some((r) => r.prompt === p));
console.error(`benign prompts refused: ${(100 * rates.benignFp).toFixed(2)}% (${rates.refused.length}/${rates.benign}); paraphrases caught: ${(100 * rates.paraphraseCatch).toFixed(1)}% alone, ${(100 * rates.dilutedCatch).toFixed(1)}% diluted`);


writeFileSync(join(root, 'policies/default.json'), JSON.stringify(policy, null, 2) + '\n');
writeFileSync(join(root, 'policies/anchors/NOTICE.md'), '# Anchor images\n\nExample images of the default policy\'s concepts, copied unchanged from npm packages:\n\n- `*-twemoji-*.png`: Twemoji © Twitter, Inc and other contributors, CC-BY 4.0 (emoji-datasource-twitter 16).\n- `*-noto-*.png`: Noto Emoji © Google LLC, Apache-2.0 (emoji-datasource-google 16).\n');
const summary = {
  date: new Date().toISOString(), encoder: enc.id, targetFp: TARGET_FP, promptTargetFp: PROMPT_TARGET_FP,
  negatives: { calibration: negCal.length, evaluation: negEval.length, promptCalibration: promptNegCal.length, promptEvaluation: promptNegEval.length },
  unionFp, unionPromptFp, unionPromptWinFp, generated: { prompts: outPrompts, fpBefore: genFpBefore, fpAfter: genFpAfter, ms: genMs }, windows: WINDOWS, dilutionTemplates: DILUTE, embedMs, concepts: rows,
  promptRates: {
    benignPrompts: rates.benign, benignFp: rates.benignFp, refused: rates.refused, demoRefused,
    benignHeldOut: heldBenign.length, benignHeldOutFp: heldRefused.length / heldBenign.length,
    heldOutNames: promptNegEval.length, heldOutNamesFp: heldNamesFp / promptNegEval.length,
    positives: rates.positives, paraphraseCatch: rates.paraphraseCatch, diluted: rates.diluted, dilutedCatch: rates.dilutedCatch,
    missed: rates.missed, perConcept: rates.perConcept, benignAnchors: policy.benign.text.length, benignImages: policy.benign.images.length, baseline: spec.baseline,
    imageFpShipped, imageFpNoBenign,
  },
  loose: { targetFp: LOOSE_FP, promptTargetFp: LOOSE_PROMPT_FP, unionFp: loose.unionFp, unionPromptFp: loose.unionPromptFp, concepts: loose.rows.map(({ scores, ...r }) => r) },
};
writeFileSync(join(root, 'bench/safety-calibration.json'), JSON.stringify(summary, null, 2) + '\n');

const pct = (x) => (Number.isNaN(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const md = [
  `Default policy \`policies/default.json\` for the tiny-emoji encoders. Scores are max cos(x, anchor) − threshold over the concept's anchors; a rule fires when the score is > 0. **Image doors** compare with the text phrases and every example image (Twemoji + Noto, skin tones included) and, against a threshold of their own (\`variantThreshold\`, ${pct(VARIANT_SHARE)} of the concept's FP budget), those images in the other seven orientations of the square and, for images with alpha, on black (\`anchorViews\` in src/safety/load.ts: a flipped, turned or on-black copy meets an anchor drawn the same way; views within cos 0.95 of one kept are merged, which an exact copy still clears). Turned pictures sit in a crowded part of this encoder's space: scored against the upright threshold they would have raised it from 0.668 to 0.803 (pistol) and cost the held-out drawings their catches. **The prompt door** compares with the text phrases only (\`prompt.anchors: "text"\`): text-to-image similarity in this small CLIP is mostly colour ("red apple" matched the red drop of blood, "lime" the green water pistol). Images: ${images.length} (Twemoji + Noto, base emoji and skin tones). Negatives are the emoji that are no concept of the policy, split by position: thresholds are set at ≤ ${pct(TARGET_FP)} false positives per concept (${pct(POLICY_FP)} for the whole policy, split over ${CONCEPTS.length} concepts) on one half (${negCal.length} images), the FP column is measured on the other half (${negEval.length} images). Prompt thresholds: ≤ ${pct(PROMPT_TARGET_FP)} per concept on the names of half of the other emoji (${promptNegCal.length} prompts), FP measured on the other half (${promptNegEval.length}).`,
  '',
  '**What TP means.** Each concept is one or two emoji, so its positives are few: its Twemoji and Noto images, skin tones included (middle finger: 6 per set). *TP in-sample* is 100% by construction (every such image is an anchor of the shipped policy, cos 1). *TP held out* is the honest figure: anchors from Twemoji only (text + Twemoji images and their views, threshold re-calibrated the same way), tested on the Noto drawings, which no anchor is (one image per concept, six for the middle finger and two for skull: read it as a count, not a rate); *all views* tests those Noto drawings in all eight orientations and on black. The encoders were trained on Twemoji, which flatters Twemoji figures; Noto is a different drawing style they never saw.',
  '',
  '| concept | threshold (img / views / prompt / window) | images | TP in-sample | FP (held-out half) | held-out images | TP held out | TP held out, all views | FP held out | prompts | TP prompts (whole) | prompts missed (whole) |',
  '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.id} | ${r.threshold.toFixed(3)} / ${r.variantThreshold.toFixed(3)} / ${r.promptThreshold.toFixed(3)} / ${r.windowThreshold.toFixed(3)} | ${r.images} | ${pct(r.tpIn)} | ${pct(r.fp)} | ${r.heldImages} | ${pct(r.tpHeld)} | ${pct(r.tpHeldViews)} (${r.heldViews}) | ${pct(r.fpHeld)} | ${r.prompts} | ${pct(r.tpPrompt)} | ${r.missedPrompts.map((p) => `"${p}"`).join(', ') || '—'} |`),
  '',
  `**Output door.** Generated images are blurrier than the drawings the image thresholds were set on (a red strawberry comes out as a red blob, nearer the drop of blood than any apple). ${genNeg.length} images tiny-emoji generated for benign names of the calibration half (seed 7, the defaults; ${cachedGen === genNeg.length ? 'read from a cache' : `${(genMs / 60_000).toFixed(1)} min${cachedGen ? ` for ${genNeg.length - cachedGen} of them, the rest read from a cache` : ''}`}) set a per-concept \`outputOffset\` by which both image thresholds are raised at the output door (the smallest keeping them at ≤ ${pct(OUTPUT_FP)} per concept): ${rows.map((r) => `${r.id} +${r.outputOffset.toFixed(3)}`).join(', ')}. Generated benign images blocked: ${pct(genFpBefore)} without the offsets, ${pct(genFpAfter)} with them (in-sample; the benign prompt set at every door: section "Safety: benign prompts at every door").`,
  '',
  `**The two prompt numbers** (through the guard, as shipped: whole prompt, word windows of 1..${WINDOWS} and benign anchors; \`src/safety/evaluate.ts\`, re-checked by test/safety-benign.test.ts):`,
  '',
  '| | benign prompts refused | paraphrases caught (alone) | paraphrases caught (diluted) |',
  '|---|---|---|---|',
  ...(spec.baseline ? [`| before (${spec.baseline.policy}) | ${pct(spec.baseline.benignFp)} | ${pct(spec.baseline.paraphraseCatch)} | ${pct(spec.baseline.dilutedCatch)} |`] : []),
  `| **this policy** | **${pct(rates.benignFp)}** (${rates.refused.length} of ${rates.benign}) | **${pct(rates.paraphraseCatch)}** (${Math.round(rates.paraphraseCatch * rates.positives)} of ${rates.positives}) | **${pct(rates.dilutedCatch)}** (${Math.round(rates.dilutedCatch * rates.diluted)} of ${rates.diluted}) |`,
  '',
  `Benign prompts: \`policies/benign-prompts.txt\` (${rates.benign} everyday prompts inside the vocabulary: the demo prompts, the model card's held-out prompts, emoji names of everyday categories, ${'hand-written'} red things; \`node tools/safety/benign-prompts.mjs\`). Refused: ${rates.refused.map((r) => `"${r.prompt}" (${r.rule})`).join(', ') || 'none'}. Demo prompts refused: ${demoRefused.length ? demoRefused.join(', ') : 'none'}. Of the benign prompts that are not benign anchors themselves, ${pct(heldRefused.length / heldBenign.length)} (${heldRefused.length} of ${heldBenign.length}) are refused; of the held-out half of the emoji names (never anchors), ${pct(heldNamesFp / promptNegEval.length)} (${heldNamesFp} of ${promptNegEval.length}). Paraphrases: the concepts' emoji names and paraphrases (\`policies/calibration.json\`), alone and in the benign contexts ${DILUTE.map((d) => `"${d}"`).join(', ')} (prompt dilution); missed alone: ${missedAlone.map((m) => `"${m}"`).join(', ') || 'none'} (and ${rates.missed.length - missedAlone.length} diluted forms).`,
  '',
  `**Benign anchors** (\`benign\` in the policy): ${policy.benign.text.length} emoji names and ${policy.benign.images.length} Twemoji images of the calibration half that came within ${BENIGN_NEAR} of firing a concept. A concept that clears its threshold must also be closer than the closest benign anchor (margin ${policy.benign.margin}), so "red apple" answers to the apples and hearts it resembles, not to blood; a concept's own names and paraphrases are nearer to its anchors than to any benign one. The word windows keep their reach: "a cat face with a knife" is refused on its window "knife", which no benign anchor outbids. Benign anchors are scored only when a concept clears its threshold, so they cost nothing on the usual prompt.`,
  '',
  `**Whole policy, images** (any concept fires): image FP ${pct(unionFp)} on the ${negEval.length} held-out benign images (the example images' other orientations and on-black composites are anchors too, at their own threshold); through the shipped guard ${pct(imageFpNoBenign)} without the benign image anchors, **${pct(imageFpShipped)}** with them. Emoji names (whole prompt, thresholds alone): ${pct(unionPromptFp)}; with windows ${pct(unionPromptWinFp)} — the benign anchors above then bring the held-out names to ${pct(heldNamesFp / promptNegEval.length)}.`,
  '',
  `**Looser alternative** (not shipped): ${pct(LOOSE_FP)} (images) and ${pct(LOOSE_PROMPT_FP)} (prompts) per concept meets the 2% target concept by concept, but the whole policy then blocks ${pct(loose.unionFp)} of benign images and ${pct(loose.unionPromptFp)} of benign names.`,
  '',
  '| concept | threshold (img / prompt) | TP in-sample | TP held out | TP prompts | prompts missed |',
  '|---|---|---|---|---|---|',
  ...loose.rows.map((r) => `| ${r.id} | ${r.threshold.toFixed(3)} / ${r.promptThreshold.toFixed(3)} | ${pct(r.tpIn)} | ${pct(r.tpHeld)} | ${pct(r.tpPrompt)} | ${r.missedPrompts.map((p) => `"${p}"`).join(', ') || '—'} |`),
  '',
  `**Vocabulary.** The tiny-emoji tokenizer knows ${vocab.size} words (emoji names); any other word becomes [UNK] and carries no meaning. Words of the positive prompts it cannot see: ${[...new Set(rows.flatMap((r) => r.unknownWords))].map((w) => `"${w}"`).join(', ') || 'none'}. A prompt made only of unknown words ("cigarette", "handgun", "firearm", "weapon", "kitchen") cannot be matched by the prompt door; the output door still sees the image.`,
  '',
  `${cached ? `Image embeddings read from the cache ${cacheFile}.` : `Embedding the ${images.length} images took ${(embedMs / 1000).toFixed(1)} s.`} Per-image and per-prompt scores: \`bench/safety-calibration.json\`.`,
].join('\n');
writeResultsSection('Safety: default policy calibration (tiny-emoji)', md, 'npx tsc -p tsconfig.json && node tools/safety/calibrate.mjs');
console.log(md);
