/**
 * Loads a Hugging Face `tokenizer/` folder (tokenizer.json + tokenizer_config.json)
 * with @huggingface/tokenizers and produces fixed-length id tensors the way
 * diffusers' text encoders expect: truncated to model_max_length (keeping the
 * end-of-sequence token last) and padded with the pad token.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { RagdiffError, typeError } from '../errors.js';
import { readBundleText } from '../pipeline/bundle.js';
import { clipTokenizerJson } from './clip-bpe.js';

export interface EncodedPrompt {
  ids: BigInt64Array;
  /** Tokens before padding/truncation, special tokens included. */
  tokenCount: number;
  truncated: boolean;
}

export interface ChunkedPrompt {
  /** maxLength ids per window: BOS, up to maxLength − 2 tokens of the text, EOS, padding. */
  chunks: BigInt64Array[];
  /** Tokens before windowing, special tokens included (as EncodedPrompt.tokenCount). */
  tokenCount: number;
  /** True when the text needed more than maxChunks windows (the rest is cut). */
  truncated: boolean;
}

export interface PromptTokenizer {
  readonly maxLength: number;
  readonly padId: number;
  encode(text: string): EncodedPrompt;
  /**
   * Long prompts as A1111 and compel users expect: the text's tokens in windows of
   * maxLength − 2, each window with its own BOS and EOS, padded; at most maxChunks
   * windows. A text that fits one window gives exactly encode(text).ids.
   */
  encodeChunks(text: string, maxChunks: number): ChunkedPrompt;
}

function readJson(path: string): Record<string, unknown> {
  const text = readBundleText(path, 'tokenizer file');
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new RagdiffError('MODEL_FILE_INVALID', `tokenizer file is not valid JSON: ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

export function loadTokenizer(dir: string, options: { maxLength?: number } = {}): PromptTokenizer {
  let jsonPath = join(dir, 'tokenizer.json');
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  let json: Record<string, unknown>;
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  if (!existsSync(jsonPath) && existsSync(vocabPath)) {
    // A slow CLIP tokenizer as the SD repositories publish it: built here as CLIPTokenizerFast would be.
    json = clipTokenizerJson(readJson(vocabPath), readBundleText(mergesPath, 'tokenizer merges'), config, { vocab: vocabPath, merges: mergesPath });
    jsonPath = vocabPath;
  } else {
    json = readJson(jsonPath);
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (e) {
    throw new RagdiffError('MODEL_FILE_INVALID', `cannot build a tokenizer from ${jsonPath}: ${(e as Error).message}`, { cause: e });
  }
  const configured = Number(config.model_max_length);
  // Some configs store a huge sentinel (1e30) for "no limit"; SD's CLIP uses 77.
  const maxLength = options.maxLength ?? (Number.isInteger(configured) && configured > 0 && configured < 100_000 ? configured : 77);

  // The special tokens the post-processor adds around any text, e.g. [BOS, EOS].
  const around = tok.encode('').ids;
  const eosId = around.length >= 1 ? around[around.length - 1] : undefined;
  // transformers lets special_tokens_map.json's pad token win over tokenizer_config.json's (SD 2.x and SDXL's tokenizer_2 pad with "!").
  const mapPath = join(dir, 'special_tokens_map.json');
  const map = existsSync(mapPath) ? readJson(mapPath) : {};
  const padName = tokenName(map.pad_token) ?? tokenName(config.pad_token);
  const padId = (padName !== undefined ? tok.token_to_id(padName) : undefined) ?? eosId ?? 0;
  // Prompts are cut long before tokenizing so a megabyte prompt costs no more than a long one.
  const maxChars = maxLength * 64;

  const window = (content: readonly number[]): BigInt64Array => {
    const out = new BigInt64Array(maxLength).fill(BigInt(padId));
    const ids = around.length >= 2 ? [around[0]!, ...content, eosId!] : content;
    for (let i = 0; i < ids.length; i++) out[i] = BigInt(ids[i]!);
    return out;
  };
  return {
    maxLength,
    padId,
    encodeChunks(text: string, maxChunks: number): ChunkedPrompt {
      if (typeof text !== 'string') throw typeError('INVALID_TYPE', `prompt must be a string, got ${typeof text}`);
      const clipped = text.length > maxChars * maxChunks ? text.slice(0, maxChars * maxChunks) : text;
      const ids = tok.encode(clipped).ids;
      const specials = around.length >= 2;
      const content = specials ? ids.slice(1, ids.length - 1) : ids;
      const per = specials ? maxLength - 2 : maxLength;
      const needed = Math.max(1, Math.ceil(content.length / per));
      const n = Math.min(needed, maxChunks);
      const chunks = Array.from({ length: n }, (_, c) => window(content.slice(c * per, (c + 1) * per)));
      return { chunks, tokenCount: ids.length, truncated: needed > maxChunks || clipped.length < text.length };
    },
    encode(text: string): EncodedPrompt {
      if (typeof text !== 'string') throw typeError('INVALID_TYPE', `prompt must be a string, got ${typeof text}`);
      const clipped = text.length > maxChars ? text.slice(0, maxChars) : text;
      let ids = tok.encode(clipped).ids;
      const tokenCount = ids.length;
      const truncated = tokenCount > maxLength || clipped.length < text.length;
      if (ids.length > maxLength) {
        ids = around.length >= 2 && eosId !== undefined ? [...ids.slice(0, maxLength - 1), eosId] : ids.slice(0, maxLength);
      }
      const out = new BigInt64Array(maxLength).fill(BigInt(padId));
      for (let i = 0; i < ids.length; i++) out[i] = BigInt(ids[i]!);
      return { ids: out, tokenCount, truncated };
    },
  };
}
