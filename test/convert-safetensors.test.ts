// The safetensors reader (src/convert/safetensors.ts): well-formed files read back exactly (F32,
// F16, BF16), and every header that lies, every truncated file and every pickle is a typed error
// naming the tensor or the limit, before any tensor byte is trusted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, openSafetensors } from '../src/convert/safetensors.js';
import { hasCode } from '../src/errors.js';
import { tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('ragdiff-st-');
test.after(cleanup);
let n = 0;
const file = (bytes: Buffer, name = `f${n++}.safetensors`) => { const p = join(dir, name); writeFileSync(p, bytes); return p; };

/** A file from a literal header object and a data length (for lying headers). */
function raw(header: unknown, dataLen: number, headerLen?: number): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLen ?? json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataLen, 1)]);
}

const refuses = (p: string, code: Parameters<typeof hasCode>[1], re: RegExp) =>
  assert.throws(() => openSafetensors(p), (e: unknown) => hasCode(e, code) && re.test(String((e as Error).message)), `${code} ${re}`);

test('a well-formed file reads back exactly, with its metadata', () => {
  const a = Float32Array.from([1.5, -2, 3.25, 0, 1e-7, 65504]);
  const p = file(encodeSafetensors({ 'image_proj.proj.weight': { shape: [2, 3], data: a }, 'ip_adapter.1.to_k_ip.weight': { shape: [1], data: Float32Array.from([7]) } }, { format: 'pt' }));
  const f = openSafetensors(p);
  try {
    assert.equal(f.metadata, { format: 'pt' });
    assert.equal([...f.tensors.keys()], ['image_proj.proj.weight', 'ip_adapter.1.to_k_ip.weight']);
    const t = f.readFloat32('image_proj.proj.weight');
    assert.equal(t.shape, [2, 3]);
    assert.equal(Array.from(t.data), Array.from(a));
    assert.throws(() => f.readFloat32('nope'), (e: unknown) => hasCode(e, 'WEIGHTS_MISMATCH'));
  } finally { f.close(); }
});

test('F16 and BF16 are widened to float32', () => {
  const data = Buffer.alloc(8 + 4);
  data.writeUInt16LE(0x3c00, 0); data.writeUInt16LE(0xc000, 2);      // F16 1, -2
  data.writeUInt16LE(0x0001, 4); data.writeUInt16LE(0x7c00, 6);      // F16 subnormal 2^-24, +inf
  data.writeUInt16LE(0x3fc0, 8); data.writeUInt16LE(0xbf80, 10);     // BF16 1.5, -1
  const p = file(Buffer.concat([raw({ h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] }, b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] } }, 0), data]));
  const f = openSafetensors(p);
  try {
    assert.equal(Array.from(f.readFloat32('h').data), [1, -2, 2 ** -24, Infinity]);
    assert.equal(Array.from(f.readFloat32('b').data), [1.5, -1]);
  } finally { f.close(); }
});

test('headers that lie are refused, naming the tensor', () => {
  const t = (o: object) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...o });
  refuses(file(raw(t({}), 4)), 'WEIGHTS_INVALID', /w: data_offsets end 8 is past the data/);                       // truncated data
  refuses(file(raw({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), 'WEIGHTS_INVALID', /F32 \[3\] needs 12 bytes but data_offsets span 8/);
  refuses(file(raw(t({ v: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), 12)), 'WEIGHTS_INVALID', /overlaps/);
  refuses(file(raw(t({ v: { dtype: 'F32', shape: [1], data_offsets: [12, 16] } }), 16)), 'WEIGHTS_INVALID', /4 bytes before tensor v belong to no tensor/);
  refuses(file(raw(t({}), 12)), 'WEIGHTS_INVALID', /4 bytes after the last tensor/);
  refuses(file(raw({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8)), 'WEIGHTS_INVALID', /0 <= begin <= end/);
  refuses(file(raw({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8)), 'WEIGHTS_INVALID', /non-negative integers/);
  refuses(file(raw({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, 8)), 'WEIGHTS_INVALID', /overflows/);
  refuses(file(raw({ w: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, 8)), 'WEIGHTS_INVALID', /unknown dtype "Q4"/);
  refuses(file(raw({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 2 ** 60] } }, 8)), 'WEIGHTS_INVALID', /data_offsets/);
  refuses(file(raw({ __metadata__: { a: 1 } }, 0)), 'WEIGHTS_INVALID', /__metadata__/);
  refuses(file(raw([1, 2], 0)), 'WEIGHTS_INVALID', /not a JSON object/);
});

test('truncated files and oversized headers are refused before reading them', () => {
  refuses(file(Buffer.from([1, 2, 3])), 'WEIGHTS_INVALID', /truncated: 3 bytes/);
  refuses(file(raw({}, 0, 4096)), 'WEIGHTS_INVALID', /truncated: header says 4096 bytes/);
  refuses(file(raw({}, 0, 100 * 1024 * 1024 + 1)), 'WEIGHTS_INVALID', /over the 100 MB limit/);
  const lenOnly = Buffer.alloc(8); lenOnly.writeBigUInt64LE(0xffffffffffffffffn);
  refuses(file(lenOnly), 'WEIGHTS_INVALID', /over the 100 MB limit/);
  refuses(file(Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a"')])), 'WEIGHTS_INVALID', /not valid JSON/);
});

test('pickles are refused by name and by content, saying how to convert', () => {
  refuses(file(Buffer.from('anything'), 'ip-adapter_sd15.bin'), 'WEIGHTS_PICKLED', /runs code.*save_file/);
  refuses(file(Buffer.from('anything'), 'model.ckpt'), 'WEIGHTS_PICKLED', /\.ckpt file is a PyTorch pickle/);
  refuses(file(Buffer.from([0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0])), 'WEIGHTS_PICKLED', /Python pickle/);
  refuses(file(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0])), 'WEIGHTS_PICKLED', /zip archive/);
});

test('missing files and directories are file errors', () => {
  refuses(join(dir, 'none.safetensors'), 'FILE_NOT_FOUND', /none/);
  mkdirSync(join(dir, 'd.safetensors'));
  assert.throws(() => openSafetensors(join(dir, 'd.safetensors')), (e: unknown) => hasCode(e, 'IS_DIRECTORY') || hasCode(e, 'FILE_NOT_REGULAR'));
});

test.run();
