/** Body readers of a fetch Response: each one settles once the whole body has arrived (or failed to). */
const BODY_READERS = ['arrayBuffer', 'blob', 'formData', 'json', 'text'] as const;

/**
 * A body up to this size must arrive whole within the deadline (at the default 30 s, 35 KB/s). A
 * larger one (a video, a large image), or one of unknown size, may take longer than the deadline as
 * a whole: its deadline is then for the next bytes, so a transfer that keeps going is never cut and
 * one that stalls still ends. Watching the bytes costs a stream per response, which the small
 * answers that make up most calls do not pay.
 */
export const WHOLE_BODY_DEADLINE_BYTES = 1024 * 1024;

/**
 * The deadline of one Dropbox call, joined with the signals that may end it sooner (the step's, the
 * session's), as one signal for fetch. It covers the body as well as the headers (a large body: each
 * of its chunks, WHOLE_BODY_DEADLINE_BYTES), and lets go of everything it holds once the body has
 * been read: a timer, one listener on each source signal.
 *
 * Not `AbortSignal.any([AbortSignal.timeout(ms), …])`: that keeps the timer, its signal and a
 * FinalizationRegistry entry alive for the whole timeout after every call, answered or not (30 s by
 * default), plus WeakRefs for the join. After a storm of calls that was tens of thousands of each,
 * counted as process memory per idle account (docs/benchmarks.md, figure 7), and GC work on every call.
 */
export class CallDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;
  private readonly sources: AbortSignal[];
  private released = false;

  constructor(private readonly timeoutMs: number, sources: readonly (AbortSignal | null | undefined)[]) {
    this.sources = sources.filter((source): source is AbortSignal => source != null);
    this.timer = this.arm(`no complete answer within ${timeoutMs} ms`);
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
    const length = Number(response.headers.get('content-length') ?? NaN);
    const watched = length <= WHOLE_BODY_DEADLINE_BYTES ? response : this.withDeadlinePerChunk(response);
    for (const reader of BODY_READERS) {
      const read = watched[reader].bind(watched) as () => Promise<unknown>;
      Object.defineProperty(watched, reader, { value: () => read().finally(() => this.release()), configurable: true, writable: true });
    }
    return watched;
  }

  /** The same response, whose deadline starts again with every chunk of its body that arrives. */
  private withDeadlinePerChunk(response: Response): Response {
    const again = () => {
      if (this.released) return;
      clearTimeout(this.timer);
      this.timer = this.arm(`no bytes of the answer for ${this.timeoutMs} ms`);
    };
    again();
    // A body read as a stream (the SDK's downloadFile pipes it to a file) calls no reader: its end does.
    const done = () => this.release();
    // `cancel` (Node 20 calls it; TypeScript's DOM types predate it): a consumer that gives up, as a
    // pipeline whose file write failed does, ends the body without a flush.
    const watcher: Transformer<Uint8Array, Uint8Array> & { cancel: () => void } = {
      transform(chunk, controller) {
        again();
        controller.enqueue(chunk);
      },
      flush: done,
      cancel: done,
    };
    const body = response.body!.pipeThrough(new TransformStream<Uint8Array, Uint8Array>(watcher));
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  private arm(message: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.end(new DOMException(message, 'TimeoutError')), this.timeoutMs);
    // Like AbortSignal.timeout's: a call in flight does not keep the process alive.
    timer.unref();
    return timer;
  }

  private readonly onSourceAbort = (event: Event): void => this.end((event.target as AbortSignal).reason);

  private end(reason: unknown): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason);
    this.release();
  }
}
