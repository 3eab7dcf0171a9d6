/**
 * The texts of a request as the family's encoders take them: token ids through
 * each tokenizer (SDXL's second tokenizer reads prompt_2 / negative_prompt_2,
 * defaulting to the first ones as diffusers), in 77-token windows when the UNet
 * takes any sequence length (every text padded to the same number of windows with
 * empty ones), or truncated to one window; and which texts are zeros (SDXL's
 * unset negative prompt with force_zeros_for_empty_prompt).
 */
import type { PromptTokenizer } from '../models/tokenizer.js';

export interface PromptStats {
  /** Tokens the text produced (special tokens included), before truncation. */
  tokens: number;
  /** The text encoder's fixed length: tokens per window. */
  maxTokens: number;
  /** True when the prompt was cut (to one window, or to the most windows a prompt may span). */
  truncated: boolean;
  /** 77-token windows the prompt was encoded in (1 unless the prompt is long and the model takes windows). */
  chunks: number;
}

export interface PreparedTexts {
  texts: BigInt64Array[];
  texts2?: BigInt64Array[];
  /** Per text (same order): its stats through the first tokenizer. */
  stats: PromptStats[];
}

/** `texts[i]` and `texts2[i]` (second tokenizer; default texts[i]) → ids; `maxChunks` 1 truncates. */
export function tokenizeTexts(tokenizers: readonly PromptTokenizer[], texts: readonly string[], texts2: readonly (string | undefined)[], maxChunks: number): PreparedTexts {
  const perTokenizer = tokenizers.map((tok, k) => {
    const src = k === 0 ? texts : texts.map((t, i) => texts2[i] ?? t);
    if (maxChunks <= 1) {
      return src.map((t) => {
        const e = tok.encode(t);
        return { chunks: [e.ids], tokenCount: e.tokenCount, truncated: e.truncated };
      });
    }
    return src.map((t) => tok.encodeChunks(t, maxChunks));
  });
  const windows = Math.max(...perTokenizer.flatMap((list) => list.map((e) => e.chunks.length)));
  const joined = perTokenizer.map((list, k) => {
    const tok = tokenizers[k]!;
    const empty = windows > 1 ? tok.encodeChunks('', 1).chunks[0]! : null;
    return list.map((e) => {
      if (windows === 1) return e.chunks[0]!;
      const out = new BigInt64Array(windows * tok.maxLength);
      for (let c = 0; c < windows; c++) out.set(e.chunks[c] ?? empty!, c * tok.maxLength);
      return out;
    });
  });
  const stats = perTokenizer[0]!.map((e) => ({ tokens: e.tokenCount, maxTokens: tokenizers[0]!.maxLength, truncated: e.truncated, chunks: e.chunks.length }));
  return { texts: joined[0]!, ...(joined.length > 1 ? { texts2: joined[1]! } : {}), stats };
}
