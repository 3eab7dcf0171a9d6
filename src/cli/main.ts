#!/usr/bin/env node
/**
 * The `ragdiff` command line. Each concept registers its own subcommands;
 * this file only assembles them.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { argvWantsJson, reportCliError } from './cli-errors.js';
import { registerConvertCommands } from './convert-cmd.js';
import { registerExplainCommand } from './explain.js';
import { registerGenerateCommands } from './generate.js';
import { registerIndexCommands } from './index-cmd.js';
import { registerKbCommands } from './kb-cmd.js';
import { registerServeCommand } from './serve.js';
import { registerSourcesCommands } from './live-sources.js';
import { registerWorkerCommand } from './worker.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

// Parse errors are thrown (exitOverride), not printed by commander, so they are
// reported like every other error: `ragdiff: [CODE] …`, and as JSON with --json.
// Set before the subcommands are registered: they inherit both settings.
const program = new Command()
  .name('ragdiff')
  .description('Retrieval-augmented image generation')
  .version(pkg.version)
  .exitOverride()
  .configureOutput({ outputError: () => {} });

registerGenerateCommands(program);
registerIndexCommands(program);
registerExplainCommand(program);
registerKbCommands(program);
registerServeCommand(program);
registerSourcesCommands(program);
registerConvertCommands(program);
registerWorkerCommand(program);

const argv = process.argv.slice(2);
program.parseAsync(process.argv).catch((e: unknown) => {
  // --help and --version end through exitOverride too: they are not errors.
  if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0))) {
    process.exitCode = e.exitCode;
    return;
  }
  if (e instanceof CommanderError && e.code === 'commander.help') e.message = 'a subcommand is needed (see the usage above)';
  reportCliError(e, argvWantsJson(argv));
  if (e instanceof CommanderError) process.stderr.write('(add --help for usage)\n');
});
