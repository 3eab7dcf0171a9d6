/**
 * The two numbers a prompt policy is judged by, measured through the guard
 * itself (whole prompt, word windows and benign anchors exactly as they ship):
 *   - benign false positives: the share of everyday prompts refused
 *     (policies/benign-prompts.txt);
 *   - paraphrase catches: the share of the concepts' names and paraphrases
 *     refused, alone and put in benign context (the prompt-dilution attack).
 * tools/safety/calibrate.mjs reports both on every run; a test holds the
 * shipped policy to them.
 */
import { readFileSync } from 'node:fs';
import type { SafetyGuard } from './guard.js';

export interface CalibrationSpec {
  dilute: string[];
  concepts: { id: string; emoji: string[]; text: string[]; paraphrases: string[]; action?: 'block' | 'flag'; why: string }[];
}

export interface PromptRates {
  benign: number;
  /** Benign prompts refused, with the rule. */
  refused: { prompt: string; rule: string; score: number }[];
  benignFp: number;
  positives: number;
  paraphraseCatch: number;
  diluted: number;
  dilutedCatch: number;
  /** Positives (alone or diluted) let through. */
  missed: string[];
  perConcept: Record<string, { positives: number; caught: number; diluted: number; dilutedCaught: number }>;
}

/** The lines of a prompt list (blank lines and `#` comments skipped). */
export function readPromptList(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** Positive prompts of a concept: its emoji's names (`names[shortName]`) and its paraphrases. */
export function positivePrompts(c: CalibrationSpec['concepts'][number], names: (shortName: string) => string[]): string[] {
  return [...new Set([...c.emoji.flatMap(names), ...c.paraphrases])];
}

/** Runs every prompt through `guard.checkPrompt` (prompts are screened one call each, as in service). */
export async function promptRates(guard: SafetyGuard, benign: readonly string[], spec: CalibrationSpec, names: (shortName: string) => string[]): Promise<PromptRates> {
  const refused: PromptRates['refused'] = [];
  for (const p of benign) {
    const d = await guard.checkPrompt(p);
    if (d.action === 'block') refused.push({ prompt: p, rule: d.rule!, score: d.score! });
  }
  const missed: string[] = [];
  const perConcept: PromptRates['perConcept'] = {};
  let positives = 0, caught = 0, diluted = 0, dilutedCaught = 0;
  for (const c of spec.concepts) {
    const row = { positives: 0, caught: 0, diluted: 0, dilutedCaught: 0 };
    for (const p of positivePrompts(c, names)) {
      row.positives++;
      if ((await guard.checkPrompt(p)).action === 'block') row.caught++;
      else missed.push(p);
      for (const t of spec.dilute) {
        const q = t.replace('X', p);
        row.diluted++;
        if ((await guard.checkPrompt(q)).action === 'block') row.dilutedCaught++;
        else missed.push(q);
      }
    }
    perConcept[c.id] = row;
    positives += row.positives;
    caught += row.caught;
    diluted += row.diluted;
    dilutedCaught += row.dilutedCaught;
  }
  return {
    benign: benign.length, refused, benignFp: refused.length / benign.length,
    positives, paraphraseCatch: caught / positives, diluted, dilutedCatch: dilutedCaught / diluted, missed, perConcept,
  };
}
