// Checks that @huggingface/tokenizers gives, for every caption, the ids the Python
// training code used (written by prep_data.py to .carry/tiny-emoji/tokenizer_ref.json).
// Usage: node tools/tiny_emoji/check_tokenizer.mjs
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = join(root, 'models', 'tiny-emoji', 'tokenizer');
const tok = new Tokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
const ref = JSON.parse(readFileSync(join(root, '.carry', 'tiny-emoji', 'tokenizer_ref.json'), 'utf8'));
let bad = 0;
for (const [text, ids] of ref) {
  const got = Array.from(tok.encode(text).ids, Number);
  if (got.join(',') !== ids.join(',')) {
    if (bad < 10) console.log('MISMATCH', JSON.stringify(text), got, ids);
    bad++;
  }
}
console.log(`${ref.length - bad} of ${ref.length} captions match`);
process.exit(bad ? 1 : 0);
