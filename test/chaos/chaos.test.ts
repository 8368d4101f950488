import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type RunningEmulator } from '../../src/dropbox-emulator/server.js';
import type { FaultRule } from '../../src/dropbox-emulator/faults.js';
import { sendWebhook } from '../../src/dropbox-emulator/webhook-sender.js';
import { buildEntry, isPostPath } from '../../src/entries/build-entry.js';
import { openRedis } from '../../src/redis/connection.js';
import { accountKeys } from '../../src/redis/keys.js';
import { STREAM_FROM_BYTES } from '../../src/sync/download-queue.js';
import { EngineProcess } from '../support/engine-process.js';
import { TestRedis } from '../support/redis-server.js';
import { APP_KEY, APP_SECRET, expectedMirror, readMirror } from '../support/sync-harness.js';
import { LogTap } from './log-tap.js';
import { storedActorState } from '../support/stored-actor.js';
import { seededRandom } from '../support/seeded-random.js';

/**
 * Chaos: several engine processes share one Redis and one data folder. While a driver edits,
 * renames, deletes and creates files in random accounts and sends webhook bursts to random
 * processes, a random process is SIGKILLed every few seconds and started again; Dropbox also
 * answers some calls with 5xx/429 or broken downloads, and now and then a user revokes the app and
 * links it again a moment later (through any process). Once the driver stops, every account must
 * settle to an exact mirror with one up-to-date entry per post, and no account may ever have had
 * two listings in flight at once.
 *
 * `npm test` runs the small scale; `CHAOS=long` (npm run test:chaos) the big one. CHAOS_SEED makes
 * the driver's choices repeatable (kill timing still depends on the machine). Engine logs go to a
 * temp folder that is kept when the test fails (or always with CHAOS_KEEP_LOGS=1).
 */

const LONG = process.env.CHAOS === 'long';
const SCALE = LONG
  ? { processes: 3, accounts: 20, filesPerAccount: 250, driveMs: 150_000, killEveryMs: 3_500, minKills: 30, opsPerSecond: 80, settleMs: 240_000, revokeEveryMs: 4_000 }
  : { processes: 3, accounts: 6, filesPerAccount: 60, driveMs: 15_000, killEveryMs: 2_000, minKills: 5, opsPerSecond: 30, settleMs: 40_000, revokeEveryMs: 2_500 };
const SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

/** Process-wide download slots of each engine: what one SIGKILL can interrupt at most. */
const DOWNLOAD_CONCURRENCY = 8;
const ENGINE_ENV = {
  LEASE_TTL_MS: '1000',
  SWEEP_INTERVAL_MS: '200',
  IDLE_TIMEOUT_MS: '1500',
  DOWNLOAD_CONCURRENCY: String(DOWNLOAD_CONCURRENCY),
  ACCOUNT_DOWNLOAD_CONCURRENCY: '4',
  LIST_PAGE_LIMIT: '100',
  DROPBOX_TIMEOUT_MS: '10000',
  LOG_LEVEL: 'info',
};
const DOWNLOAD_LATENCY_MS = 15;

const random = seededRandom(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Node {
  index: number;
  engine: EngineProcess;
  tap: LogTap;
  alive: boolean;
  restarting: Promise<void> | undefined;
}

let redisServer: TestRedis;
let redis: Redis;
let emulator: RunningEmulator;
let dataDir: string;
let logDir: string;
let failed = true;
const nodes: Node[] = [];
const accounts = Array.from({ length: SCALE.accounts }, (_, n) => `dbid:chaos-${String(n).padStart(2, '0')}`);

const figures = {
  kills: 0,
  restarts: 0,
  faultsInjected: 0,
  dropboxFaults: 0,
  downloadFaults: 0,
  webhookFailedAttempts: 0,
  webhooksSent: 0,
  webhooksUndelivered: 0,
  filesWritten: 0,
  revocations: 0,
  relinks: 0,
  relinkFailedAttempts: 0,
  edits: 0,
  creates: 0,
  largeFilesWritten: 0,
  moves: 0,
  deletes: 0,
};

beforeAll(async () => {
  redisServer = await TestRedis.start();
  redis = await openRedis(redisServer.url);
  emulator = await startEmulator({ appKey: APP_KEY, appSecret: APP_SECRET, pageLimit: 100, latencyMs: 2 });
  emulator.faults.setLatency(DOWNLOAD_LATENCY_MS, 'files/download'); // slow enough that kills land mid-download
  dataDir = mkdtempSync(join(tmpdir(), 'mailroom-chaos-data-'));
  logDir = mkdtempSync(join(tmpdir(), 'mailroom-chaos-logs-'));
  const engines = await Promise.all(
    Array.from({ length: SCALE.processes }, () => EngineProcess.start({ redisUrl: redisServer.url, dataDir, dropboxUrl: emulator.url, env: ENGINE_ENV })),
  );
  engines.forEach((engine, index) => nodes.push({ index, engine, tap: new LogTap(join(logDir, `engine-${index}.log`)), alive: true, restarting: undefined }));
}, 60_000);

afterAll(async () => {
  for (const node of nodes) {
    await node.restarting?.catch(() => undefined);
    node.tap.poll(node.engine.output);
    await node.engine.kill('SIGKILL');
  }
  redis?.disconnect();
  await emulator?.close();
  await redisServer?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (logDir && !failed && !process.env.CHAOS_KEEP_LOGS) rmSync(logDir, { recursive: true, force: true });
  else if (logDir) console.log(`chaos: engine logs kept in ${logDir}`);
}, 60_000);

const post = (title: string, version: number) => `# ${title} v${version}\n\nBody of ${title}, version ${version}.\n`;

/** What the driver writes next into one account: a few kinds of files in a few folders. */
class AccountDriver {
  private counter = 0;
  private versions = new Map<string, number>();

  constructor(readonly accountId: string) {}

  files(): string[] {
    return emulator.model.listTree(this.accountId).filter((i) => i.kind === 'file').map((i) => i.pathDisplay);
  }

  write(path: string): void {
    const version = (this.versions.get(path.toLowerCase()) ?? 0) + 1;
    this.versions.set(path.toLowerCase(), version);
    const name = path.slice(path.lastIndexOf('/') + 1);
    // Now and then a file large enough to be streamed to disk (STREAM_FROM_BYTES): kills and
    // faults then land in the middle of the SDK's downloadFile and its .part file too.
    const filler = path.endsWith('.bin') && random() < 0.03 ? STREAM_FROM_BYTES + Math.floor(random() * 65_536) : Math.floor(random() * 2_000);
    const content = path.endsWith('.bin') ? `binary ${name} ${version} ${'x'.repeat(filler)}` : post(`${this.accountId} ${name}`, version);
    if (filler > STREAM_FROM_BYTES) figures.largeFilesWritten++;
    emulator.model.writeFile(this.accountId, path, content);
    figures.filesWritten++;
  }

  newPath(): string {
    const n = this.counter++;
    const roll = random();
    if (roll < 0.6) return `/posts/p-${n}.md`;
    if (roll < 0.75) return `/notes/Note ${n}.txt`;
    if (roll < 0.9) return `/assets/img/img-${n}.bin`;
    return `/posts/deep/${n % 5}/p-${n}.md`;
  }

  /** One random change; returns false when there was nothing to change. */
  change(): boolean {
    const files = this.files();
    const roll = random();
    if (roll < 0.2 || files.length < 10) {
      this.write(this.newPath());
      figures.creates++;
      return true;
    }
    const target = pick(files);
    if (roll < 0.55) {
      this.write(target);
      figures.edits++;
    } else if (roll < 0.62) {
      // Several versions in a row: earlier ones may be queued or downloading when they are superseded.
      for (let i = 0; i < 3; i++) this.write(target);
      figures.edits += 3;
    } else if (roll < 0.82) {
      const extension = target.slice(target.lastIndexOf('.'));
      const folder = pick(['/renamed', '/posts', '/archive/2024']);
      emulator.model.move(this.accountId, target, `${folder}/moved-${this.counter++}${extension}`);
      figures.moves++;
    } else {
      emulator.model.remove(this.accountId, target);
      figures.deletes++;
    }
    return true;
  }
}

function liveNodes(): Node[] {
  return nodes.filter((n) => n.alive);
}

/** Like Dropbox (or a load balancer in front of the engines): a failed delivery is tried again, on any process. */
async function deliverWebhook(accountIds: readonly string[]): Promise<boolean> {
  figures.webhooksSent++;
  for (let attempt = 0; attempt < 40; attempt++) {
    const node = pick(nodes); // may well be dead or starting: that is the point
    const delivery = await sendWebhook({ url: `${node.engine.url}/webhooks/dropbox`, appSecret: APP_SECRET, accounts: accountIds, attempts: 1, timeoutMs: 5_000 });
    if (delivery.delivered) return true;
    figures.webhookFailedAttempts++;
    await sleep(50 + Math.floor(random() * 150));
  }
  figures.webhooksUndelivered++;
  return false;
}

/**
 * The user links the app again after revoking it: a new token, through any process (a failed
 * attempt, a dead or starting process, is tried again on another, as a browser would retry).
 */
async function relink(accountId: string): Promise<boolean> {
  const token = `tok-${accountId}-${++figures.relinks}`;
  emulator.model.tokens.registerAccessToken(accountId, token);
  for (let attempt = 0; attempt < 40; attempt++) {
    const node = pick(nodes);
    const status = await node.engine.api(`/accounts/${accountId}`, { method: 'PUT', body: JSON.stringify({ accessToken: token }) }).then((r) => r.status, () => 0);
    if (status === 200) return true;
    figures.relinkFailedAttempts++;
    await sleep(50 + Math.floor(random() * 150));
  }
  return false;
}

function restart(node: Node): Promise<void> {
  node.restarting ??= (async () => {
    await node.engine.launch();
    node.alive = true;
    figures.restarts++;
  })().finally(() => {
    node.restarting = undefined;
  });
  return node.restarting;
}

async function killOne(): Promise<void> {
  const candidates = liveNodes();
  if (candidates.length < 2) return; // keep at least one process up, or nothing makes progress
  const node = pick(candidates);
  node.alive = false;
  node.tap.poll(node.engine.output);
  await node.engine.kill('SIGKILL');
  figures.kills++;
  // Restart after a short while, in the background: the kill loop goes on meanwhile.
  void sleep(Math.floor(random() * 1_000)).then(() => restart(node));
}

function injectDropboxFault(accountId: string): void {
  const roll = random();
  let rule: FaultRule;
  if (roll < 0.3) rule = { route: 'files/download', accountId, status: 500 };
  else if (roll < 0.45) rule = { route: 'files/download', accountId, truncate: true };
  else if (roll < 0.6) rule = { route: 'files/download', accountId, corrupt: true };
  else if (roll < 0.8) rule = { route: 'files/list_folder/continue', accountId, status: 503 };
  else rule = { route: 'files/download', accountId, status: 429, retryAfterSeconds: 1 };
  emulator.faults.inject(rule);
  figures.dropboxFaults++;
  if (rule.route === 'files/download') figures.downloadFaults++;
}

interface Idle {
  status: string | null;
  dirty: string | null;
  queued: number;
  unapplied: number;
  actor: string | null;
}

async function idleState(accountId: string): Promise<Idle> {
  const k = accountKeys(accountId);
  const [[status, dirty], queued, unapplied, actor] = await Promise.all([
    redis.hmget(k.mailbox, 'status', 'dirty'),
    redis.hlen(k.queue),
    redis.llen(k.changes),
    storedActorState(redis, accountId),
  ]);
  return { status: status ?? null, dirty: dirty ?? null, queued, unapplied, actor: actor ?? null };
}

const isIdle = (s: Idle) => s.status === 'idle' && s.dirty !== '1' && s.queued === 0 && s.unapplied === 0;

function accountLogs(accountId: string, limit = 60): string {
  return nodes.map((n) => `--- engine-${n.index} (${n.tap.file}) ---\n${n.tap.grep(`"${accountId}"`, limit).join('\n')}`).join('\n');
}

describe(`chaos: ${SCALE.processes} engine processes, ${SCALE.accounts} accounts, kills every ~${SCALE.killEveryMs} ms (seed ${SEED})`, () => {
  it('every account settles to an exact mirror with one up-to-date entry per post', async () => {
    const started = Date.now();
    const drivers = accounts.map((id) => new AccountDriver(id));
    for (const driver of drivers) {
      emulator.model.addAccount(driver.accountId, { accessToken: `tok-${driver.accountId}` });
      for (let n = 0; n < SCALE.filesPerAccount; n++) driver.write(driver.newPath());
    }
    // Each account is linked once, through whichever process.
    for (const id of accounts) {
      const response = await pick(nodes).engine.api(`/accounts/${id}`, { method: 'PUT', body: JSON.stringify({ accessToken: `tok-${id}` }) });
      expect(response.status).toBe(200);
    }

    const tapTimer = setInterval(() => { for (const n of nodes) n.tap.poll(n.engine.output); }, 100);
    const inFlight = new Set<Promise<unknown>>();
    const track = (p: Promise<unknown>) => { inFlight.add(p); void p.finally(() => inFlight.delete(p)); };

    // --- the driver ---
    let stop = false;
    const driveUntil = started + SCALE.driveMs;
    const hardStop = driveUntil + SCALE.driveMs; // if kills lag behind (slow restarts), drive a bit longer, not forever
    const killer = (async () => {
      while (!stop) {
        await sleep(SCALE.killEveryMs / 2 + random() * SCALE.killEveryMs);
        if (!stop) await killOne();
      }
    })();
    const faulter = (async () => {
      while (!stop) {
        await sleep(400 + random() * 600);
        injectDropboxFault(pick(accounts));
      }
    })();
    // The user revokes the app (every call with the account's tokens is refused from then on) and
    // links it again a moment later, through any process: the account waits for the re-link, then
    // catches up with what changed meanwhile.
    const revoked = new Set<string>();
    const revoker = (async () => {
      while (!stop) {
        await sleep(SCALE.revokeEveryMs / 2 + random() * SCALE.revokeEveryMs);
        const accountId = pick(accounts);
        if (stop || revoked.has(accountId)) continue;
        emulator.model.tokens.revokeAccount(accountId);
        revoked.add(accountId);
        figures.revocations++;
        track(sleep(Math.floor(random() * 3_000)).then(async () => {
          if (await relink(accountId)) revoked.delete(accountId);
        }));
      }
    })();
    const touched = new Set<string>();
    const tick = 1_000 / SCALE.opsPerSecond;
    let lastWebhook = Date.now();
    while (Date.now() < hardStop && (Date.now() < driveUntil || figures.kills < SCALE.minKills)) {
      const driver = pick(drivers);
      driver.change();
      touched.add(driver.accountId);
      if (Date.now() - lastWebhook > 150 || touched.size >= 4) {
        lastWebhook = Date.now();
        const batch = [...touched];
        touched.clear();
        // Sometimes a burst: the same notification several times at once, to several processes.
        const copies = random() < 0.15 ? 5 + Math.floor(random() * 10) : 1;
        for (let i = 0; i < copies; i++) track(deliverWebhook(batch));
      }
      await sleep(tick);
    }
    stop = true;
    await Promise.all([killer, faulter, revoker]);
    const drivenMs = Date.now() - started;

    // --- settle: everyone up, every revoked account re-linked, one final webhook per account, wait for idle ---
    await Promise.all(inFlight);
    await Promise.all(nodes.map((n) => (n.alive ? undefined : restart(n))));
    for (const accountId of [...revoked]) if (await relink(accountId)) revoked.delete(accountId);
    expect([...revoked], 'accounts whose re-link never went through').toEqual([]);
    for (const id of accounts) {
      expect(await deliverWebhook([id]), `final webhook for ${id}`).toBe(true);
    }
    const settleStarted = Date.now();
    const deadline = settleStarted + SCALE.settleMs;
    let states = new Map<string, Idle>();
    for (;;) {
      states = new Map(await Promise.all(accounts.map(async (id) => [id, await idleState(id)] as const)));
      if ([...states.values()].every(isIdle) || Date.now() > deadline) break;
      await sleep(100);
    }
    const settleMs = Date.now() - settleStarted;
    clearInterval(tapTimer);
    for (const n of nodes) n.tap.poll(n.engine.output);

    // --- check ---
    const stuck = accounts.filter((id) => !isIdle(states.get(id)!));
    let changesLost = 0;
    let duplicateEntries = 0;
    let staleEntries = 0;
    let staleTitlesOnly = 0;
    let missingEntries = 0;
    let downloads = 0;
    let maxListings = 0;
    const problems: string[] = [];
    for (const id of accounts) {
      const expected = expectedMirror(emulator, id);
      const actual = await readMirror(dataDir, id);
      const wrong: string[] = [];
      for (const [path, file] of expected) {
        const got = actual.get(path);
        if (!got) wrong.push(`missing ${path}`);
        else if (got.content !== file.content) wrong.push(`stale content ${path}`);
        else if (got.mtimeMs !== file.mtimeMs) wrong.push(`mtime ${path}: ${got.mtimeMs} != ${file.mtimeMs}`);
      }
      for (const path of actual.keys()) if (!expected.has(path)) wrong.push(`extra ${path}`);
      changesLost += wrong.length;

      // Entries: exactly one per post, under its current path, built from its newest content.
      const k = accountKeys(id);
      const [entryIds, entries] = await Promise.all([redis.hgetall(k.entryIds), redis.hgetall(k.entries)]);
      const posts = emulator.model.listTree(id).filter((i) => i.kind === 'file' && isPostPath(i.pathLower));
      const ids = Object.values(entryIds);
      const dupIds = ids.length - new Set(ids).size;
      const orphans = Object.keys(entries).filter((entryId) => !ids.includes(entryId)).length;
      const extraPaths = Object.keys(entryIds).filter((p) => !posts.some((post) => post.pathLower === p)).length;
      duplicateEntries += dupIds + orphans + extraPaths;
      const entryProblems: string[] = [];
      if (dupIds + orphans + extraPaths) entryProblems.push(`duplicates: ${dupIds} shared ids, ${orphans} orphan entries, ${extraPaths} entries for paths that are gone`);
      for (const item of posts) {
        const entryId = entryIds[item.pathLower];
        const json = entryId === undefined ? undefined : entries[entryId];
        if (!json) {
          missingEntries++;
          entryProblems.push(`no entry for ${item.pathDisplay}`);
          continue;
        }
        const entry = JSON.parse(json) as { path: string; title: string; html: string };
        const want = buildEntry({ path: item.pathDisplay, content: Buffer.from(item.content ?? new Uint8Array()).toString('utf8') });
        if (entry.path !== item.pathDisplay || entry.title !== want.title || entry.html !== want.html) {
          staleEntries++;
          // Say which part is stale: a title derived from an older file name (a rename) is not stale content.
          const what = [entry.path !== item.pathDisplay && 'path', entry.title !== want.title && 'title', entry.html !== want.html && 'html'].filter(Boolean).join('+');
          if (entry.html === want.html && entry.path === item.pathDisplay) staleTitlesOnly++;
          entryProblems.push(`stale entry (${what}) ${item.pathDisplay}: has ${JSON.stringify({ path: entry.path, title: entry.title })}, want ${JSON.stringify({ title: want.title })}`);
        }
      }
      const listings = emulator.stats.maxListingsInFlight(id);
      maxListings = Math.max(maxListings, listings);
      downloads += emulator.stats.downloads(id);
      if (wrong.length || entryProblems.length || listings > 1 || stuck.includes(id)) {
        problems.push(
          [`account ${id}: state ${JSON.stringify(states.get(id))}, max listings in flight ${listings}`,
            ...wrong.slice(0, 15), ...entryProblems.slice(0, 15), accountLogs(id)].join('\n'),
        );
      }
    }

    // Every download is one file version that a listing queued (a write, or a move of a file not yet
    // on disk), plus repeats: a SIGKILL interrupts at most DOWNLOAD_CONCURRENCY downloads of the
    // killed process and as many downloaded files being written (their files never reached disk, so
    // the new owner fetches them again); a process that lost a lease while alive may likewise have
    // that many in progress; an injected download fault (500, 429, truncated, corrupt) costs at most
    // one more. Files already on disk are never refetched.
    const ownershipLosses = nodes.reduce((sum, n) => sum + n.tap.count('lost ownership of the account'), 0);
    // How often a revocation was noticed before its re-link (the account waited for it).
    const refusals = nodes.reduce((sum, n) => sum + n.tap.count('"state":"awaitingRelink"'), 0);
    const downloadBound = figures.filesWritten + figures.moves + (figures.kills + ownershipLosses) * 2 * DOWNLOAD_CONCURRENCY + figures.downloadFaults;
    figures.faultsInjected = figures.kills + figures.dropboxFaults + figures.webhookFailedAttempts;

    const summary = {
      mode: LONG ? 'long' : 'default',
      seed: SEED,
      processes: SCALE.processes,
      accounts: SCALE.accounts,
      drivenMs,
      settleMs,
      killsSurvived: figures.kills,
      restarts: figures.restarts,
      faultsInjected: figures.faultsInjected,
      dropboxFaults: figures.dropboxFaults,
      webhookAttemptsRefused: figures.webhookFailedAttempts,
      filesWritten: figures.filesWritten,
      edits: figures.edits,
      creates: figures.creates,
      largeFilesWritten: figures.largeFilesWritten,
      moves: figures.moves,
      deletes: figures.deletes,
      revocations: figures.revocations,
      relinks: figures.relinks,
      relinkAttemptsRefused: figures.relinkFailedAttempts,
      refusals,
      webhooksSent: figures.webhooksSent,
      webhooksUndelivered: figures.webhooksUndelivered,
      ownershipLosses,
      changesLost,
      duplicateEntries,
      missingEntries,
      staleEntries,
      staleTitlesOnly,
      stuckAccounts: stuck.length,
      maxListingsInFlight: maxListings,
      downloads,
      downloadBound,
      downloadsPerFileWritten: Number((downloads / figures.filesWritten).toFixed(3)),
    };
    console.log(`CHAOS_SUMMARY ${JSON.stringify(summary)}`);
    if (process.env.CHAOS_SUMMARY_FILE) writeFileSync(process.env.CHAOS_SUMMARY_FILE, `${JSON.stringify(summary)}\n`);
    if (problems.length) console.error(`chaos problems (seed ${SEED}):\n${problems.join('\n\n')}`);

    expect(figures.kills).toBeGreaterThanOrEqual(SCALE.minKills);
    expect(figures.webhooksUndelivered).toBe(0);
    expect(stuck, 'accounts not idle at the deadline').toEqual([]);
    expect(changesLost, 'mirror files missing, stale or extra').toBe(0);
    expect(duplicateEntries, 'duplicate entries').toBe(0);
    expect(missingEntries, 'posts without an entry').toBe(0);
    expect(staleEntries, 'entries whose path, title or HTML differ from buildEntry of the newest content at the current path (see the stale entry lines above)').toBe(0);
    expect(maxListings, 'two listings of one account in flight at once').toBeLessThanOrEqual(1);
    expect(downloads).toBeLessThanOrEqual(downloadBound);
    failed = false;
  }, LONG ? 900_000 : 150_000);
});
