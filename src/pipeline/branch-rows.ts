/**
 * The rows of some guidance branches, gathered into a contiguous batch and scattered back. A batched
 * UNet input holds `branches × batch` rows, branch-major (branch b owns rows b·batch … (b+1)·batch − 1);
 * when only some branches need a costlier UNet variant (reference attention on the text+retrieval
 * branch), their rows run through it and the others through the plain UNet.
 */
export class BranchRows {
  /** Number of rows selected (selected branches × batch). */
  readonly rows: number;
  private readonly blocks: number[];

  constructor(selected: readonly boolean[], private readonly batch: number) {
    this.blocks = selected.flatMap((s, b) => (s ? [b] : []));
    this.rows = this.blocks.length * batch;
  }

  /** Copies the selected rows of `all` (rows of `rowSize` values) into `out`, in order. */
  gather(all: Float32Array, out: Float32Array, rowSize: number): void {
    const block = this.batch * rowSize;
    this.blocks.forEach((b, i) => out.set(all.subarray(b * block, (b + 1) * block), i * block));
  }

  /** Writes `part` (the selected rows, in order) back to their places in `all`. */
  scatter(part: Float32Array, all: Float32Array, rowSize: number): void {
    const block = this.batch * rowSize;
    this.blocks.forEach((b, i) => all.set(part.subarray(i * block, (i + 1) * block), b * block));
  }
}
