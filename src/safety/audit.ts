/**
 * The audit log: one JSON line per safety decision (time, door, item, rule,
 * score, action, policy hash), size-rotated as audit.log → audit.log.1 → …
 * → audit.log.<keep> (the oldest is dropped).
 *
 * Never image bytes; prompts only as their first `maxPromptChars` characters
 * plus a sha256 (so a decision can be matched to a prompt without storing it).
 * Each line is one write(2) on a descriptor opened with O_APPEND, and writes
 * are synchronous, so concurrent decisions in one process never interleave.
 * Several processes appending to one file keep whole lines (O_APPEND), but
 * rotation is not coordinated between processes: give each process its own log.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { rangeError, typeError } from '../errors.js';
import type { SafetyDoor } from './policy.js';

export interface AuditEntry {
  door: SafetyDoor | 'policy';
  /** Store id, `sha256:<hex>` of an image, `prompt:<sha256 prefix>`, or `output:<seed>`. */
  item: string;
  rule?: string;
  score?: number;
  action: 'allow' | 'block' | 'flag' | 'load' | 'reject';
  policy: string;
  version?: string;
  /** The prompt, truncated (prompt door only). */
  prompt?: string;
  note?: string;
}

export interface AuditLogOptions {
  path: string;
  /** Rotate when the file would exceed this many bytes. Default 10 MiB. */
  maxBytes?: number;
  /** Rotated files kept. Default 5. */
  keep?: number;
  /** Characters of a prompt recorded. Default 64; 0 records none. */
  maxPromptChars?: number;
  /** Record allow decisions too. Default true (every decision). */
  allows?: boolean;
}

export class AuditLog {
  readonly path: string;
  readonly maxBytes: number;
  readonly keep: number;
  readonly maxPromptChars: number;
  readonly allows: boolean;
  private fd: number | null = null;
  private size = 0;
  /** Lines written by this object (all files). */
  written = 0;

  constructor(options: AuditLogOptions) {
    if (!options || typeof options.path !== 'string' || options.path === '') throw typeError('INVALID_TYPE', 'audit.path must be a file path');
    this.path = options.path;
    this.maxBytes = options.maxBytes ?? 10 * 1024 * 1024;
    this.keep = options.keep ?? 5;
    this.maxPromptChars = options.maxPromptChars ?? 64;
    this.allows = options.allows ?? true;
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 256) throw rangeError('OUT_OF_RANGE', `audit.maxBytes must be an integer ≥ 256, got ${this.maxBytes}`);
    if (!Number.isInteger(this.keep) || this.keep < 1 || this.keep > 1000) throw rangeError('OUT_OF_RANGE', `audit.keep must be in 1..1000, got ${this.keep}`);
    if (!Number.isInteger(this.maxPromptChars) || this.maxPromptChars < 0) throw rangeError('OUT_OF_RANGE', `audit.maxPromptChars must be a non-negative integer, got ${this.maxPromptChars}`);
    mkdirSync(dirname(this.path), { recursive: true });
  }

  private open(): number {
    if (this.fd === null) {
      this.fd = openSync(this.path, 'a', 0o600);
      this.size = fstatSync(this.fd).size;
    }
    return this.fd;
  }

  private rotate(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    const oldest = `${this.path}.${this.keep}`;
    if (existsSync(oldest)) rmSync(oldest, { force: true });
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.path}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
    }
    if (existsSync(this.path)) renameSync(this.path, `${this.path}.1`);
  }

  /** A prompt as it may be logged: truncated, with a hash of the whole. */
  promptFields(prompt: string): { item: string; prompt?: string } {
    const sha = createHash('sha256').update(prompt).digest('hex').slice(0, 16);
    return { item: `prompt:${sha}`, ...(this.maxPromptChars > 0 ? { prompt: prompt.slice(0, this.maxPromptChars) } : {}) };
  }

  /** Appends one decision. Allow decisions are skipped when `allows` is false. */
  record(entry: AuditEntry): void {
    if (entry.action === 'allow' && !this.allows) return;
    const e: Record<string, unknown> = { time: new Date().toISOString(), ...entry };
    if (typeof e.score === 'number') e.score = Math.round(e.score * 1e4) / 1e4;
    if (typeof e.prompt === 'string') e.prompt = e.prompt.slice(0, this.maxPromptChars);
    const line = Buffer.from(JSON.stringify(e) + '\n');
    let fd = this.open();
    if (this.size > 0 && this.size + line.length > this.maxBytes) {
      this.rotate();
      fd = this.open();
    }
    writeSync(fd, line, 0, line.length);
    this.size += line.length;
    this.written++;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
