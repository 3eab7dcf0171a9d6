#!/usr/bin/env node
// Prints docs/errors.md from src/error-codes.ts (compiled): `node tools/error-table.mjs > docs/errors.md`.
// test/error-codes.test.ts fails when the two disagree.
import { ERROR_CODES } from '../dist/src/error-codes.js';

const rows = Object.entries(ERROR_CODES).map(([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning.replaceAll('|', '\\|')} |`);
process.stdout.write(`# Error codes

Every error ragdiff throws on purpose carries a \`code\` from this closed set
(\`ErrorCode\` in [src/error-codes.ts](../src/error-codes.ts); the constructors
accept nothing else, and the native addon's codes are listed too). The status
column is what an HTTP service answers with (\`httpStatusOf(code)\`; any other
value maps to 500). To add a code, add it to src/error-codes.ts in its group and
regenerate this file: \`npm run build && node tools/error-table.mjs > docs/errors.md\`.

| Code | HTTP | Meaning |
| --- | --- | --- |
${rows.join('\n')}
`);
