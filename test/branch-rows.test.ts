// BranchRows (src/pipeline/branch-rows.ts): the rows of some guidance branches, gathered into their own
// batch (reference attention runs only the branches that attend through the costlier UNet variant) and
// scattered back to where they came from.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BranchRows } from '../src/pipeline/branch-rows.js';

test('gathers the selected branches\' rows in order and scatters them back; the others are untouched', () => {
  const batch = 2, rowSize = 3, branches = 3;
  const all = Float32Array.from({ length: branches * batch * rowSize }, (_, i) => i);
  const last = new BranchRows([false, false, true], batch);
  assert.is(last.rows, 2);
  const part = new Float32Array(last.rows * rowSize);
  last.gather(all, part, rowSize);
  assert.equal(Array.from(part), [12, 13, 14, 15, 16, 17]);
  const outer = new BranchRows([true, false, true], batch);
  const two = new Float32Array(outer.rows * rowSize);
  outer.gather(all, two, rowSize);
  assert.equal(Array.from(two), [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17]);
  const back = new Float32Array(all.length).fill(-1);
  outer.scatter(two.map((v) => v * 10), back, rowSize);
  assert.equal(Array.from(back), [0, 10, 20, 30, 40, 50, -1, -1, -1, -1, -1, -1, 120, 130, 140, 150, 160, 170]);
  const none = new BranchRows([false, false], 4);
  assert.is(none.rows, 0);
  none.scatter(new Float32Array(0), back, rowSize);                 // nothing selected: nothing written
  assert.is(back[6], -1);
});

test.run();
