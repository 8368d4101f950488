/** Body readers of a fetch Response: each one settles once the whole body has arrived (or failed to). */
const BODY_READERS = ['arrayBuffer', 'blob', 'formData', 'json', 'text'] as const;

/**
 * The deadline of one Dropbox call, joined with the signals that may end it sooner (the step's, the
 * session's), as one signal for fetch. It covers the body as well as the headers, and lets go of
 * everything it holds once the body has been read: a timer, one listener on each source signal.
 *
 * Not `AbortSignal.any([AbortSignal.timeout(ms), …])`: that keeps the timer, its signal and a
 * FinalizationRegistry entry alive for the whole timeout after every call, answered or not (30 s by
 * default), plus WeakRefs for the join. After a storm of calls that was tens of thousands of each,
 * counted as process memory per idle account (docs/benchmarks.md, figure 7), and GC work on every call.
 */
export class CallDeadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private readonly sources: AbortSignal[];
  private released = false;

  constructor(timeoutMs: number, sources: readonly (AbortSignal | null | undefined)[]) {
    this.sources = sources.filter((source): source is AbortSignal => source != null);
    this.timer = setTimeout(() => this.end(new DOMException(`no complete answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    // Like AbortSignal.timeout's: a call in flight does not keep the process alive.
    this.timer.unref();
    for (const source of this.sources) {
      if (source.aborted) {
        this.end(source.reason);
        break;
      }
      source.addEventListener('abort', this.onSourceAbort);
    }
  }

  /** Aborts at the deadline, or with the reason of the first source that aborts. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The call failed or needs no deadline any more: clear the timer, leave the sources. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    for (const source of this.sources) source.removeEventListener('abort', this.onSourceAbort);
  }

  /** `response`, whose body readers release the deadline once they settle (at once when it has no body). */
  untilBodyRead(response: Response): Response {
    if (response.body === null) {
      this.release();
      return response;
    }
    for (const reader of BODY_READERS) {
      const read = response[reader].bind(response) as () => Promise<unknown>;
      Object.defineProperty(response, reader, { value: () => read().finally(() => this.release()), configurable: true, writable: true });
    }
    return response;
  }

  private readonly onSourceAbort = (event: Event): void => this.end((event.target as AbortSignal).reason);

  private end(reason: unknown): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    this.release();
  }
}
