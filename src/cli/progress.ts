/**
 * The one progress bar of the long commands (`index add`, `index add-url`,
 * `index rebuild`, `kb build`, `npm run eval:rag`), drawn by cli-progress on
 * stderr. Quiet — nothing written at all — when the stream is not a terminal
 * or the output is JSON, so pipes, logs and scripts see only the results.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** `done` of `total` finished; `detail` is shown after the counts (e.g. "added 3 skipped 1"). */
  update(done: number, total: number, detail?: string): void;
  /** Clears the bar (call once the work ends, also on failure). */
  done(): void;
}

export interface ProgressOptions {
  /** Shown before the bar, e.g. "index add". */
  label: string;
  /** --json: stay quiet. */
  json?: boolean;
  /** Default process.stderr; anything with write() and isTTY (tests pass a fake terminal). */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

const QUIET: Progress = { update() {}, done() {} };

export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  if (o.json || stream.isTTY !== true) return QUIET;
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${o.label} [{bar}] {value}/{total} {detail} eta {eta_formatted}`,
    barsize: 30,
    hideCursor: false,
    clearOnComplete: true,
    stopOnComplete: false,
    // Redraw at most every 100 ms (the default): a fast ingest does not flood the terminal.
    fps: 10,
  }, cliProgress.Presets.legacy);
  let started = false;
  return {
    update(done, total, detail = '') {
      if (!started) {
        bar.start(Math.max(total, 1), done, { detail });
        started = true;
      } else {
        if (bar.getTotal() !== total) bar.setTotal(Math.max(total, 1));
        bar.update(done, { detail });
      }
    },
    done() {
      if (started) bar.stop();
      started = false;
    },
  };
}
