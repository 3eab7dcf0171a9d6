// Spec: argument checks give built-in error classes with stable codes and actionable messages.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { assertInteger, assertNumber, assertOneOf, assertFinite, assertFloat32Array } from '../src/validate.js';
import { RagdiffError, BusyError, AbortError, hasCode } from '../src/errors.js';

function caught(fn: () => void): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

test('integers: wrong type is a TypeError, fraction or out of range a RangeError naming the bound', () => {
  assertInteger('steps', 25, 1, 1000);
  const t = caught(() => assertInteger('steps', '25', 1, 1000));
  assert.instance(t, TypeError);
  assert.is(t.code, 'INVALID_TYPE');
  const f = caught(() => assertInteger('seed', 1.5, 0, 10));
  assert.instance(f, RangeError);
  const r = caught(() => assertInteger('steps', 0, 1, 1000));
  assert.instance(r, RangeError);
  assert.is(r.code, 'OUT_OF_RANGE');
  assert.match(r.message, /steps must be in 1\.\.1000, got 0/);
});

test('numbers must be finite', () => {
  assert.is(caught(() => assertNumber('guidanceScale', NaN)).code, 'NON_FINITE');
  assert.is(caught(() => assertNumber('guidanceScale', Infinity)).code, 'NON_FINITE');
  assertNumber('guidanceScale', 7.5, 0, 100);
});

test('enums list what is allowed', () => {
  const e = caught(() => assertOneOf('sampler', 'plms', ['ddim', 'euler'] as const));
  assert.match(e.message, /"ddim", "euler"/);
});

test('tensors: type, length and finiteness', () => {
  assert.instance(caught(() => assertFloat32Array('sample', [1, 2, 3])), TypeError);
  assert.is(caught(() => assertFloat32Array('sample', new Float32Array(3), 4)).code, 'LENGTH_MISMATCH');
  const nan = new Float32Array([0, 1, NaN]);
  const e = caught(() => assertFinite('sample', nan));
  assert.is(e.code, 'NON_FINITE');
  assert.match(e.message, /sample\[2\]/);
  assertFinite('sample', new Float32Array([0, -1, 3e38]));
});

test('named errors carry codes', () => {
  assert.ok(hasCode(new BusyError('queue full'), 'BUSY'));
  assert.ok(new AbortError() instanceof RagdiffError);
  assert.is(new AbortError().code, 'ABORTED');
});

test.run();
