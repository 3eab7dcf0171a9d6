/** tiny-emoji's captions (lower-cased emoji names), held-out subcategories excluded, in a fixed shuffled order (shared by the ReDi eval and its picture strip). */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export function emojiPrompts(bundle: string): string[] {
  const require = createRequire(import.meta.url);
  const emoji = (require('emoji-datasource-twitter/emoji.json') as { name: string; subcategory: string; sort_order: number }[])
    .slice().sort((a, b) => a.sort_order - b.sort_order);
  const split = JSON.parse(readFileSync(join(bundle, 'split.json'), 'utf8')) as { heldout_subcategories: string[] };
  const names = [...new Set(emoji.filter((e) => !split.heldout_subcategories.includes(e.subcategory)).map((e) => e.name.toLowerCase()))];
  // Deterministic shuffle (LCG) so base and query prompts spread over every category.
  let lcg = 12345;
  const rnd = () => ((lcg = (lcg * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [names[i], names[j]] = [names[j]!, names[i]!];
  }
  return names;
}
