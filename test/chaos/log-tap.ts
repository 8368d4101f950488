import { appendFileSync, readFileSync } from 'node:fs';

/**
 * Keeps the whole log of one engine process (across its restarts) in a file. `EngineProcess.output`
 * is a sliding window of the last 200 kB; polling it often and appending what is new gives the full
 * log as long as less than a window is written between two polls (a gap is marked if not).
 */
export class LogTap {
  private seen = '';

  constructor(readonly file: string) {
    appendFileSync(file, '');
  }

  poll(output: string): void {
    if (output === this.seen) return;
    let delta: string;
    if (output.startsWith(this.seen)) {
      delta = output.slice(this.seen.length);
    } else {
      const tail = this.seen.slice(-4_096);
      const at = tail ? output.lastIndexOf(tail) : -1;
      delta = at >= 0 ? output.slice(at + tail.length) : `\n[log-tap: lines lost, more than the output window was written between two polls]\n${output}`;
    }
    this.seen = output;
    if (delta) appendFileSync(this.file, delta);
  }

  /** The JSON log lines that mention `needle` (e.g. an account id), last `limit` of them. */
  grep(needle: string, limit = 80): string[] {
    const lines = readFileSync(this.file, 'utf8').split('\n').filter((line) => line.includes(needle));
    return lines.slice(-limit);
  }

  count(needle: string): number {
    return readFileSync(this.file, 'utf8').split(needle).length - 1;
  }
}
