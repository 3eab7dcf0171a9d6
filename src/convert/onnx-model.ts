/**
 * ONNX model I/O for `ragdiff convert`: a ModelProto as plain JSON (protobuf's JSON mapping with
 * proto field names), read and written through tools/convert/onnx_io.py (Debian's python3-onnx).
 *
 * Why a bridge: the shared node_modules has no protobuf library carrying the ONNX schema; only
 * (de)serialisation crosses it, every graph decision is made here in TypeScript.
 *
 * Weights are never loaded or copied: initializers stored as external data stay references, and
 * writing a model elsewhere rewrites each reference's `location` so it still names the original
 * bytes (relative to the new model file's directory).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagdiffError } from '../errors.js';

export interface StringStringEntry { key: string; value: string }
export interface TensorJson {
  name?: string;
  dims?: string[];
  data_type?: number;
  raw_data?: string;
  float_data?: number[];
  int64_data?: string[];
  int32_data?: number[];
  data_location?: 'DEFAULT' | 'EXTERNAL';
  external_data?: StringStringEntry[];
}
export interface AttributeJson {
  name: string;
  type?: string;
  i?: string;
  f?: number;
  s?: string;
  t?: TensorJson;
  ints?: string[];
  floats?: number[];
}
export interface NodeJson {
  input?: string[];
  output?: string[];
  name?: string;
  op_type: string;
  domain?: string;
  attribute?: AttributeJson[];
}
export interface ValueInfoJson { name: string; type?: unknown }
export interface GraphJson {
  node: NodeJson[];
  name?: string;
  initializer?: TensorJson[];
  input?: ValueInfoJson[];
  output?: ValueInfoJson[];
  value_info?: ValueInfoJson[];
}
export interface ModelJson {
  ir_version?: string;
  opset_import?: { domain?: string; version: string }[];
  producer_name?: string;
  metadata_props?: StringStringEntry[];
  graph: GraphJson;
  [k: string]: unknown;
}

/** A loaded model and the directory its external data is relative to. */
export interface OnnxModel {
  model: ModelJson;
  /** Absolute directory of the file it was read from (external data locations are relative to it). */
  dir: string;
}

const here = dirname(fileURLToPath(import.meta.url));
// src/convert or dist/src/convert -> the repository root
const root = here.includes(join('dist', 'src')) ? join(here, '..', '..', '..') : join(here, '..', '..');
const BRIDGE = join(root, 'tools', 'convert', 'onnx_io.py');
const PYTHON = process.env.RAGDIFF_PYTHON ?? '/usr/bin/python3';
const MAX_JSON = 4 * 1024 ** 3;

function bridge(args: string[], input?: string): string {
  const r = spawnSync(PYTHON, [BRIDGE, ...args], { input, maxBuffer: MAX_JSON, encoding: 'utf8' });
  if (r.error) {
    throw new RagdiffError('UNSUPPORTED', `ragdiff convert needs Python 3 with the onnx package (${PYTHON}: ${r.error.message}); on Debian/Ubuntu: apt-get install python3-onnx, or set RAGDIFF_PYTHON`);
  }
  if (r.status !== 0) {
    const msg = (r.stderr || '').trim().split('\n').slice(-1)[0];
    if (/No module named .?onnx/.test(r.stderr)) {
      throw new RagdiffError('UNSUPPORTED', `ragdiff convert needs the Python onnx package: apt-get install python3-onnx (or pip install onnx), or set RAGDIFF_PYTHON`);
    }
    throw new RagdiffError('MODEL_FILE_INVALID', `${args[1]}: ${args[0] === 'read' ? 'not a readable ONNX model' : 'could not be written'}: ${msg}`);
  }
  return r.stdout;
}

/**
 * Reads an ONNX model's protobuf (never its external data). With `shareInline`, initializers stored
 * inside the file (>= 64 bytes) come back as external-data references to their own bytes in it, so
 * a rewritten graph shares them and a large single-file model never crosses the bridge as base64.
 */
export function readOnnxModel(path: string, opts: { shareInline?: boolean } = {}): OnnxModel {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new RagdiffError('MODEL_FILE_MISSING', `${path}: no such ONNX file`);
  if (!statSync(abs).isFile()) throw new RagdiffError('MODEL_FILE_INVALID', `${path}: not a regular file`);
  const model = JSON.parse(bridge([opts.shareInline ? 'read-shared' : 'read', abs])) as ModelJson;
  if (!model.graph || !Array.isArray(model.graph.node)) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${path}: an ONNX file without a graph`);
  }
  return { model, dir: dirname(abs) };
}

/** The external data entries (location/offset/length) of an initializer, or undefined if inline. */
export function externalData(t: TensorJson): Record<string, string> | undefined {
  if (t.data_location !== 'EXTERNAL') return undefined;
  return Object.fromEntries((t.external_data ?? []).map((e) => [e.key, e.value]));
}

/**
 * Writes `m.model` to `outPath`. External data references are rewritten relative to the new file's
 * directory so they keep naming the original bytes; a location that would leave that directory is
 * refused, since onnxruntime reads external data only from below the model's directory.
 */
export function writeOnnxModel(m: OnnxModel, outPath: string): void {
  const outDir = dirname(resolve(outPath));
  const model = structuredClone(m.model);
  for (const t of model.graph.initializer ?? []) {
    const ext = externalData(t);
    if (!ext) continue;
    const loc = ext.location;
    if (!loc) throw new RagdiffError('MODEL_FILE_INVALID', `initializer ${t.name}: external data without a location`);
    const target = resolve(m.dir, loc);
    const rel = relative(outDir, target);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      throw new RagdiffError('OUTPUT_NOT_WRITABLE', `initializer ${t.name}: its external data ${target} is not below ${outDir}; onnxruntime would not read it from there (write the model next to its weights)`);
    }
    for (const e of t.external_data ?? []) if (e.key === 'location') e.value = rel;
  }
  bridge(['write', resolve(outPath)], JSON.stringify(model));
}

/**
 * Makes the external data files of `m` reachable from `outDir` without copying a byte: each file is
 * hard-linked there under its own location (same inode; onnxruntime resolves symlinks against the
 * model directory, a hard link is an ordinary file to it). Returns the model as if read from outDir.
 * Across filesystems a hard link is impossible and this refuses rather than copy gigabytes.
 */
export function shareExternalData(m: OnnxModel, outDir: string): OnnxModel {
  const dir = resolve(outDir);
  const locations = new Set<string>();
  for (const t of m.model.graph.initializer ?? []) {
    const loc = externalData(t)?.location;
    if (loc) locations.add(loc);
  }
  for (const loc of locations) {
    const from = resolve(m.dir, loc);
    const rel = relative(m.dir, from);
    if (rel.startsWith('..') || isAbsolute(rel)) {
      throw new RagdiffError('MODEL_FILE_INVALID', `external data location ${loc} leaves the model directory ${m.dir}`);
    }
    if (!existsSync(from)) throw new RagdiffError('MODEL_FILE_MISSING', `external data ${from} does not exist`);
    const to = join(dir, rel);
    mkdirSync(dirname(to), { recursive: true });
    if (existsSync(to) && statSync(to).ino === statSync(from).ino) continue;
    try {
      linkSync(from, to);
    } catch (e) {
      throw new RagdiffError('OUTPUT_NOT_WRITABLE', `cannot hard-link the weights ${from} into ${dir} (${(e as Error).message}); write the output on the same filesystem as the source bundle (weights are shared, never copied)`, { cause: e });
    }
  }
  return { model: m.model, dir };
}
