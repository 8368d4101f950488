import { mkdir, readdir, readFile, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { downloadFile } from 'dropbox';
import { callDropbox, DropboxEndpointError } from '../dropbox/call-dropbox.js';
import { contentHash, hashFile } from '../dropbox/content-hash.js';
import { forEachBounded, Semaphore } from '../engine/semaphore.js';
import { EntryBuildError } from '../entries/build-entry.js';
import { isRedisUnavailable } from '../redis/redis-errors.js';
import { isFencedError } from '../redis/scripts.js';
import { localPathFor, UnsafePathError } from './paths.js';
import type { DownloadItem } from './records.js';
import { assertPostSize, markdownEntryBuilder, mirrorFolder, type SyncDeps } from './sync-deps.js';
import { SyncError } from './sync-failure.js';
import { mtimeFor, placeFileAtomically, removeLeftoverTempFiles, tempPathIn, writeFileAtomically } from './write-file.js';

export interface DownloadOutput {
  downloaded: number;
  unchanged: number;
  dropped: number;
  /** Files that no retry could write, set aside (SyncStore.setAside) so the rest syncs. */
  setAside: number;
  bytes: number;
}

type Outcome = 'downloaded' | 'unchanged' | 'dropped';

/**
 * File-system errors that belong to one path and come back on every retry while the path stays as
 * it is: the name is too long or has bytes the file system refuses, a folder stands where the file
 * should go, a file where a folder should. Not a full or read-only disk, missing permissions or too
 * many open files: those stop every file alike, so the step fails and backs off, and the queue is
 * kept for when the disk is fixed.
 */
const PATH_ERRORS = new Set(['ENAMETOOLONG', 'EILSEQ', 'EINVAL', 'EISDIR', 'ENOTDIR', 'EEXIST']);
/**
 * The calls that look a path up. The same codes from a call on an open file (futimes, fsync: EINVAL
 * on a file system that cannot do it) would fail every file alike.
 */
const PATH_CALLS = new Set(['open', 'rename', 'mkdir', 'utime', 'lutime']);

/**
 * The reason to set a file aside, when `error` is one that only a change to its path (or, for a post
 * that cannot become an entry, to the file) can cure.
 */
export function setAsideReason(error: unknown): { kind: 'filesystem' | 'post'; message: string } | null {
  if (error instanceof EntryBuildError) return { kind: 'post', message: `${error.reason} (the file is in the mirror; its entry is not made or updated until the file changes)` };
  const { code, syscall } = (error ?? {}) as NodeJS.ErrnoException;
  if (typeof code !== 'string' || !PATH_ERRORS.has(code) || typeof syscall !== 'string' || !PATH_CALLS.has(syscall)) return null;
  return { kind: 'filesystem', message: (error as Error).message };
}

/**
 * Files up to this size have their temp file opened while their bytes download (TempFilesAhead): for
 * them the open is a share of the file's time worth taking off its path. A bigger file's download
 * dwarfs it, and its temp file would stand empty for as long as the download takes.
 */
export const OPEN_AHEAD_MAX_BYTES = 256 * 1024;

/** Bytes that do not match content_hash are fetched again this many times before the step fails. */
const HASH_ATTEMPTS = 3;

/**
 * Files over this size are streamed to disk by the SDK's downloadFile (into a temp file beside
 * their target; it checks the size and content_hash there), not held in memory: its filesDownload
 * reads a whole body into one Buffer, so a few videos at once could exhaust the process, and one
 * past Node's Buffer limit (4 GiB) failed on every retry. The rest, almost every file of a blog,
 * keep the faster in-memory path. Memory held by downloads is then at most this much per download
 * and write slot.
 */
export const STREAM_FROM_BYTES = 8 * 1024 * 1024;

/** The SDK's downloadFile found the bytes not to be the ones its answer described (a corrupt or short body). */
function isStreamMismatch(error: unknown): boolean {
  return /^(content hash mismatch|incomplete download)/.test((error as Error | null)?.message ?? '');
}

/**
 * The download queue as the apply step's commit left it, handed to the download step of the same
 * lease (engine/handover.ts), with the paths that step queued where the local index had no file in
 * an incremental run. Nothing of ours is on disk there, so no stat is spent looking before the
 * download (a file a crash left there between its rename and its record costs one download again;
 * the write is atomic and fenced either way). A full listing hands no such paths: the mirror may
 * hold files the index forgot (an account linked again), and its folders are listed instead.
 */
export interface HandedQueue {
  items: readonly DownloadItem[];
  notInIndex: ReadonlySet<string>;
}

/**
 * `downloading`: works through the persisted queue with bounded concurrency (per account, and per
 * process through the shared slots). An item leaves the queue only after its file is on disk and
 * its entry is set; a failed item stays queued and the step fails after the others finish, so the
 * actor backs off and retries just what is left.
 */
export async function downloadQueue(accountId: string, signal: AbortSignal, deps: SyncDeps, handedOver?: HandedQueue): Promise<DownloadOutput> {
  const log = deps.log.child({ accountId, step: 'downloading' });
  // The queue as the apply step's commit left it, when this step follows it under the same lease
  // (nothing else writes an account's queue meanwhile); otherwise as Redis has it now.
  const items = handedOver?.items ?? (await deps.store.queued(accountId));
  const output: DownloadOutput = { downloaded: 0, unchanged: 0, dropped: 0, setAside: 0, bytes: 0 };
  if (!items.length) return output;
  const root = mirrorFolder(deps.dataDir, accountId);
  const targets = new Map(items.map((item) => [item, targetOf(item)]));
  const paths = [...targets.values()].filter((t): t is string => typeof t === 'string');
  // A queue not handed over by this lease's apply step may be one an earlier step left, killed
  // mid-download (a restart, a takeover, a retry): its temp files would stay in the mirror for good.
  // A handed queue may be one too (that step failed before it looked: Redis, the credentials), so
  // the folders of its streamed files are looked at anyway: their leftovers can be gigabytes, and a
  // look costs little beside such a download. Before anything that can fail.
  const sweep = handedOver ? [...targets].filter(([item, target]) => item.size > STREAM_FROM_BYTES && typeof target === 'string').map(([, target]) => target as string) : paths;
  if (sweep.length) {
    const removed = await removeLeftoverTempFiles(new Set(sweep.map(dirname)));
    if (removed > 0) log.info({ removed }, 'removed temp files a stopped download left in the mirror');
  }
  const session = await deps.session(accountId);
  const onDisk = new MirrorFiles(paths, handedOver?.notInIndex);

  // Once Redis is unreachable (or the lease is lost) nothing more can be recorded: start no new
  // downloads, or every queued file would be fetched and thrown away before the step fails. Once
  // Dropbox refuses the credentials, every other download would be refused too.
  let halted: unknown;
  // The network and the disk are separate resources: a download's slot (per account, and the
  // process-wide ones) is held only while its bytes arrive, so `downloadsPerAccount` downloads stay
  // in flight while the files before them are written (temp file, fsync, rename, Redis). A file is
  // handed from its download slot to a process-wide write slot without letting go in between, so
  // the bytes held and the work a crash can interrupt stay bounded: at most downloadSlots +
  // writeSlots files per process, twice as many lanes as downloads per account.
  const downloading = new Semaphore(deps.downloadsPerAccount);
  // Temp files opened ahead for downloads that came to nothing, being removed (downloadOne).
  const discards: Promise<void>[] = [];
  const results = await forEachBounded(items, 2 * deps.downloadsPerAccount, async (item) => {
    if (halted) throw halted;
    if (signal.aborted) throw new SyncError({ kind: 'internal', message: 'stopped', at: deps.clock.now(), jitter: deps.random() });
    try {
      const outcome = await downloadOne(item);
      output[outcome]++;
      if (outcome === 'downloaded') output.bytes += item.size;
      if (outcome !== 'dropped') deps.events.report('fileSynced', { accountId, path: item.pathDisplay, bytes: item.size, downloaded: outcome === 'downloaded' });
    } catch (error) {
      const reason = setAsideReason(error);
      // A download cut short by a stop (unlink, shutdown, watchdog, a takeover) did not fail.
      if (!signal.aborted) deps.events.report('downloadFailed', { accountId, path: item.pathDisplay, kind: error instanceof SyncError ? error.failure.kind : reason ? reason.kind : isRedisUnavailable(error) ? 'redis' : 'internal' });
      if (isRedisUnavailable(error) || isFencedError(error) || refusesEveryCall(error)) halted ??= error;
      // Not when the mirror's own folder is missing or not a folder: every file fails then (ENOTDIR).
      if (!reason || signal.aborted || !(await isFolder(root))) throw error;
      // Retrying would fail the same way and hold the whole account in backoff.
      if (await deps.store.setAside(accountId, item, { ...reason, at: deps.clock.now() }, { inMirror: reason.kind === 'post' })) {
        output.setAside++;
        log.warn({ path: item.pathDisplay, reason: reason.message }, reason.kind === 'post' ? 'set a post aside: it cannot become an entry' : 'set a file aside: it cannot be written at its path');
        deps.events.report('fileSetAside', { accountId, path: item.pathDisplay, kind: reason.kind, message: reason.message });
      }
    }
  });
  await Promise.all(discards);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  log.info({ ...output, failed: failures.length, queued: items.length }, 'downloads done');
  if (failures.length) throw failures[0]!.reason;
  return output;

  function stopIfAborted(): void {
    if (signal.aborted) throw new SyncError({ kind: 'internal', message: 'downloading stopped', at: deps.clock.now(), jitter: deps.random() });
  }

  function targetOf(item: DownloadItem): string | UnsafePathError {
    try {
      return localPathFor(root, item.pathDisplay);
    } catch (error) {
      if (error instanceof UnsafePathError) return error;
      throw error;
    }
  }

  async function downloadOne(item: DownloadItem): Promise<Outcome> {
    const target = targets.get(item)!;
    if (target instanceof UnsafePathError) {
      log.warn({ path: item.pathDisplay, reason: target.reason }, 'refused a Dropbox path');
      await deps.store.dropQueued(accountId, item);
      return 'dropped';
    }
    if (await onDisk.sameBytes(target, item)) {
      stopIfAborted();
      await deps.store.assertOwner(accountId);
      const mtime = mtimeFor(item.clientModified, deps.clock.now());
      await utimes(target, mtime, mtime);
      await complete(item, () => readFile(target));
      return 'unchanged';
    }
    const releaseAccountSlot = await downloading.acquire();
    const releaseProcessSlot = await deps.downloadSlots.acquire();
    // Opened while the bytes arrive, under the download's slot (so at most as many as downloads),
    // and not by a download that will not start: the slot may have come from one just stopped.
    const ahead = item.size <= OPEN_AHEAD_MAX_BYTES && !halted && !signal.aborted ? deps.tempFiles.open(dirname(target)) : undefined;
    let handedToWrite = false;
    try {
      let bytes: Buffer | { streamedTo: string } | 'gone';
      let releaseWriteSlot: () => void;
      try {
        bytes = item.size > STREAM_FROM_BYTES ? await fetchVerifiedToFile(item, target) : await fetchVerified(item);
        releaseWriteSlot = bytes === 'gone' ? () => {} : await deps.writeSlots.acquire();
      } finally {
        releaseProcessSlot();
        releaseAccountSlot();
      }
      if (bytes === 'gone') return 'dropped';
      try {
        const mtime = mtimeFor(item.clientModified, deps.clock.now());
        // Fenced and as late as possible: a former owner (paused past its lease) is refused here, and
        // a rev a newer listing superseded never overwrites the newer file.
        const stillWanted = () => deps.store.isCurrentDownload(accountId, item);
        let written: boolean;
        if ('streamedTo' in bytes) {
          handedToWrite = true;
          if (signal.aborted) await rm(bytes.streamedTo, { force: true });
          stopIfAborted();
          written = await placeFileAtomically(target, bytes.streamedTo, mtime, stillWanted);
        } else {
          stopIfAborted();
          const opened = await ahead;
          // Taken from the registry here, so from now on the write alone closes it (a shutdown that
          // discarded it meanwhile leaves the write to open its own).
          const temp = opened && deps.tempFiles.take(opened) ? opened : undefined;
          handedToWrite = true;
          written = await writeFileAtomically(target, bytes, mtime, stillWanted, { ahead: temp });
        }
        if (!written) return 'dropped';
        const inMemory = bytes instanceof Buffer ? bytes : undefined;
        try {
          await complete(item, async () => inMemory ?? readFile(target));
        } catch (error) {
          if (isFencedError(error)) deps.requestReconcile(accountId, `renamed ${item.pathDisplay} into place, then found the account taken over`);
          throw error;
        }
        return 'downloaded';
      } finally {
        releaseWriteSlot();
      }
    } finally {
      // A download that failed, was gone or was stopped leaves no temp file behind. Not awaited
      // here: a refusal must reach `halted` before the slots it freed start more downloads.
      if (!handedToWrite && ahead) discards.push(ahead.then((temp) => deps.tempFiles.discard(temp)));
    }
  }

  /** The bytes of the queued rev, checked against its content_hash; 'gone' when Dropbox no longer has it. */
  async function fetchVerified(item: DownloadItem): Promise<Buffer | 'gone'> {
    for (let attempt = 1; ; attempt++) {
      if (halted) throw halted;
      stopIfAborted();
      let bytes: Buffer;
      try {
        const response = await callDropbox(
          'files/download',
          (client) => client.filesDownload({ path: `rev:${item.rev}` }),
          { session, clock: deps.clock, signal, random: deps.random, maxAttempts: deps.maxAttemptsPerCall, baseDelayMs: deps.retryBaseDelayMs, onCall: (info) => deps.events.report('dropboxCall', info) },
        );
        bytes = (response.result as unknown as { fileBinary: Buffer }).fileBinary;
      } catch (error) {
        if (error instanceof DropboxEndpointError) {
          // The revision is gone (deleted or overwritten since listing): the next listing says what is there now.
          log.info({ path: item.pathDisplay, tag: error.tag }, 'queued file no longer downloadable; dropped');
          await deps.store.dropQueued(accountId, item);
          return 'gone';
        }
        throw error;
      }
      // (A server that lists no content_hash gives nothing to check the bytes against.)
      if (item.contentHash === '' || contentHash(bytes) === item.contentHash) return bytes;
      log.warn({ path: item.pathDisplay, attempt }, 'downloaded bytes do not match content_hash');
      if (attempt >= HASH_ATTEMPTS) {
        throw new SyncError({ kind: 'content_mismatch', message: `download of ${item.pathDisplay} did not match its content_hash ${HASH_ATTEMPTS} times`, at: deps.clock.now(), jitter: deps.random() });
      }
    }
  }

  /**
   * A file over STREAM_FROM_BYTES, streamed by the SDK's downloadFile into a temp file beside its
   * target (whose folder it makes), size and content_hash checked there: that temp file, or 'gone'
   * when Dropbox no longer has the rev. The SDK removes its `.part` file when it fails; a kill
   * leaves it to removeLeftoverTempFiles.
   */
  async function fetchVerifiedToFile(item: DownloadItem, target: string): Promise<{ streamedTo: string } | 'gone'> {
    const folder = dirname(target);
    for (let attempt = 1; ; attempt++) {
      if (halted) throw halted;
      stopIfAborted();
      await mkdir(folder, { recursive: true });
      const temp = tempPathIn(folder);
      try {
        const result = await callDropbox(
          'files/download',
          // One attempt inside: callDropbox's policy (Retry-After, backoff, refresh) retries it.
          (client) => downloadFile(client, `rev:${item.rev}`, temp, { maxAttempts: 1, signal }),
          { session, clock: deps.clock, signal, random: deps.random, maxAttempts: deps.maxAttemptsPerCall, baseDelayMs: deps.retryBaseDelayMs, onCall: (info) => deps.events.report('dropboxCall', info) },
        );
        // The SDK checked the answer's own content_hash; the listed rev's is the one that counts.
        if (item.contentHash === '' || result.metadata.content_hash === item.contentHash) return { streamedTo: temp };
        await rm(temp, { force: true });
      } catch (error) {
        await Promise.all([rm(temp, { force: true }), rm(`${temp}.part`, { force: true })]);
        if (error instanceof DropboxEndpointError) {
          log.info({ path: item.pathDisplay, tag: error.tag }, 'queued file no longer downloadable; dropped');
          await deps.store.dropQueued(accountId, item);
          return 'gone';
        }
        if (!isStreamMismatch(error)) throw error;
      }
      log.warn({ path: item.pathDisplay, attempt }, 'downloaded bytes do not match content_hash');
      if (attempt >= HASH_ATTEMPTS) {
        throw new SyncError({ kind: 'content_mismatch', message: `download of ${item.pathDisplay} did not match its content_hash ${HASH_ATTEMPTS} times`, at: deps.clock.now(), jitter: deps.random() });
      }
    }
  }

  /** The file is on disk: set its entry (a post) and take it off the queue, in one script. */
  async function complete(item: DownloadItem, content: () => Promise<Buffer>): Promise<void> {
    const builder = deps.entryBuilder ?? markdownEntryBuilder;
    if (!builder.isPost(item.pathLower)) {
      await deps.store.completeDownload(accountId, item);
      return;
    }
    assertPostSize(builder, item.pathDisplay, item.size);
    const { title, html } = builder.build({ path: item.pathDisplay, content: await content() });
    const entry = deps.entries.setCall(accountId, { pathLower: item.pathLower, path: item.pathDisplay, title, html, updated: Date.parse(item.serverModified) }, { now: deps.clock.now() });
    const result = await deps.store.completeDownload(accountId, item, entry);
    if (result.entry?.applied) deps.events.report('entrySet', { accountId, entry: result.entry.entry });
  }
}

async function isFolder(path: string): Promise<boolean> {
  return stat(path).then((info) => info.isDirectory(), () => false);
}

/**
 * Whether the file on disk already has the listed content (a reset, a replay): then no download is
 * needed. A stat per file (and a hash when the size matches) is a thread-pool call on the path of
 * every download, and on a first sync the answer is always no; so a folder with many queued files
 * is listed once per step instead, and only a name the listing holds is stat'ed and hashed. Nothing
 * else writes into the mirror during the step (one item per path, and the step is the account's
 * only writer), so a listing taken at the folder's first item stays true for the others; a replay
 * is a new step with new listings. A wrong "no" would only cost a download (the write is atomic
 * and fenced either way), never a wrong file.
 */
export class MirrorFiles {
  /**
   * Below this many queued files in one folder, one stat each: listing a big folder for a few
   * changed files (the usual incremental run) would cost more than it saves.
   */
  static readonly LIST_FROM = 8;
  private readonly listed = new Map<string, Promise<Set<string> | 'unknown'> | null>();

  /** `notInIndex`: paths (path_lower) known to hold nothing of ours (see HandedQueue): no look at the disk. */
  constructor(targets: readonly string[], private readonly notInIndex: ReadonlySet<string> = new Set()) {
    const counts = new Map<string, number>();
    for (const target of targets) counts.set(dirname(target), (counts.get(dirname(target)) ?? 0) + 1);
    for (const [folder, count] of counts) if (count >= MirrorFiles.LIST_FROM) this.listed.set(folder, null);
  }

  async sameBytes(target: string, item: DownloadItem): Promise<boolean> {
    if (this.notInIndex.has(item.pathLower)) return false;
    const names = await this.namesIn(dirname(target));
    if (names !== 'unknown' && !names.has(foldName(basename(target)))) return false;
    try {
      const info = await stat(target);
      if (!info.isFile() || info.size !== item.size) return false;
    } catch {
      return false;
    }
    return item.contentHash !== '' && (await hashFile(target)) === item.contentHash;
  }

  private namesIn(folder: string): Promise<Set<string> | 'unknown'> {
    if (!this.listed.has(folder)) return Promise.resolve('unknown');
    let names = this.listed.get(folder);
    if (!names) {
      names = readdir(folder).then(
        (entries) => new Set(entries.map(foldName)),
        // No folder (or a file in its place): nothing can be at any path in it.
        (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' || error.code === 'ENOTDIR' ? new Set<string>() : 'unknown' as const),
      );
      this.listed.set(folder, names);
    }
    return names;
  }
}

/**
 * Names compared loosely (case and Unicode normalisation folded), so that on a case- or
 * normalisation-insensitive file system (macOS) a name the stat would find is never missed.
 */
function foldName(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/** A failure no other call with the same credentials could escape: the account's token, or the app's key. */
function refusesEveryCall(error: unknown): boolean {
  return error instanceof SyncError && (error.failure.kind === 'auth' || error.failure.kind === 'app_credentials');
}
