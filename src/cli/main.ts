#!/usr/bin/env node
/**
 * The `ragdiff` command line. Each concept registers its own subcommands;
 * this file only assembles them.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerExplainCommand } from './explain.js';
import { registerGenerateCommands } from './generate.js';
import { registerIndexCommands } from './index-cmd.js';
import { registerKbCommands } from './kb-cmd.js';
import { registerServeCommand } from './serve.js';
import { registerWorkerCommand } from './worker.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('ragdiff')
  .description('Retrieval-augmented image generation')
  .version(pkg.version)
  .showHelpAfterError();

registerGenerateCommands(program);
registerIndexCommands(program);
registerExplainCommand(program);
registerKbCommands(program);
registerServeCommand(program);
registerWorkerCommand(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { code?: string; message?: string };
  console.error(`ragdiff: ${err.code ? `[${err.code}] ` : ''}${err.message ?? String(e)}`);
  process.exitCode = process.exitCode || 1;
});
