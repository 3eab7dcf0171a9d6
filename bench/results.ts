/**
 * Writes one benchmark's section into bench/RESULTS.md, replacing the previous
 * run of the same section and stamping it with the machine, date and command.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, platform, arch } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');
export const resultsPath = join(root, 'bench', 'RESULTS.md');

export function machineDescription(): string {
  const c = cpus();
  const gib = (totalmem() / 2 ** 30).toFixed(0);
  return `${c.length}× ${c[0]?.model.trim() ?? 'unknown CPU'}, ${gib} GiB, ${platform()}-${arch()}, Node ${process.version}`;
}

/**
 * @param title   section heading (unique per benchmark)
 * @param markdown body of the section (tables, notes)
 * @param command the command that reproduces it
 * @param machine override when the figures came from another machine (e.g. a GPU host)
 */
export function writeResultsSection(title: string, markdown: string, command = 'npm run bench', machine = machineDescription()): void {
  const header = '# Benchmark results\n\nEach section is rewritten by the benchmark that produced it. Compare ratios within one section: the machines are shared and noisy.\n';
  const text = existsSync(resultsPath) ? readFileSync(resultsPath, 'utf8') : header;
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  const section = `## ${title}\n\n_Machine:_ ${machine}  \n_Date:_ ${date}  \n_Command:_ \`${command}\`\n\n${markdown.trim()}\n`;
  const start = text.indexOf(`## ${title}\n`);
  let next: string;
  if (start < 0) {
    next = text.trimEnd() + '\n\n' + section;
  } else {
    const after = text.indexOf('\n## ', start + 3);
    next = text.slice(0, start) + section + (after < 0 ? '' : text.slice(after + 1));
  }
  writeFileSync(resultsPath, next);
}
