/**
 * The tokenizer.json of a CLIP BPE tokenizer saved the slow way (vocab.json +
 * merges.txt + tokenizer_config.json: what the Stable Diffusion repositories
 * publish under tokenizer/ and tokenizer_2/), written as transformers'
 * CLIPTokenizerFast converts it: NFC, whitespace runs to one space, lower case;
 * CLIP's split pattern; byte-level BPE with the "</w>" end-of-word suffix;
 * BOS + text + EOS.
 */
import { RagdiffError } from '../errors.js';

function tokenName(v: unknown, fallback: string): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return fallback;
}

export function clipTokenizerJson(vocab: Record<string, unknown>, mergesText: string, config: Record<string, unknown>, paths: { vocab: string; merges: string }): Record<string, unknown> {
  for (const [k, v] of Object.entries(vocab)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new RagdiffError('MODEL_FILE_INVALID', `${paths.vocab}: the id of ${JSON.stringify(k)} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  const merges = mergesText.split(/\r?\n/).filter((l) => l.length > 0 && !l.startsWith('#version'));
  merges.forEach((m, i) => {
    if (m.split(' ').length !== 2) throw new RagdiffError('MODEL_FILE_INVALID', `${paths.merges}: line ${i + 2} is not "left right": ${JSON.stringify(m.slice(0, 80))}`);
  });
  const bos = tokenName(config.bos_token, '<|startoftext|>');
  const eos = tokenName(config.eos_token, '<|endoftext|>');
  const unk = tokenName(config.unk_token, '<|endoftext|>');
  const id = (t: string) => {
    const v = vocab[t];
    if (typeof v !== 'number') throw new RagdiffError('MODEL_FILE_INVALID', `${paths.vocab}: has no ${t} token`);
    return v;
  };
  const special = (t: string) => ({ id: id(t), content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const extra = new Set([bos, eos, unk]);
  const pad = tokenName(config.pad_token, eos);
  if (vocab[pad] !== undefined) extra.add(pad);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...extra].map(special),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: { type: 'RobertaProcessing', sep: [eos, id(eos)], cls: [bos, id(bos)], trim_offsets: false, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: '', end_of_word_suffix: '</w>',
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges,
    },
  };
}
