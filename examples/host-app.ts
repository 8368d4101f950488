/**
 * A host application using Mailroom as a library: no HTTP server, its own entry builder, events.
 *
 *   npx tsx examples/host-app.ts            (starts a throwaway redis-server; or set REDIS_URL)
 *
 * It runs against the project's Dropbox emulator, so it needs no Dropbox app. In your application
 * you would drop the emulator and pass `dropbox: { appKey, appSecret }` (and no apiUrl).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEngine, markdownEntryBuilder, type EntryBuilder, type MailroomEngine } from 'mailroom';
// Development helpers of this repository (not part of the library): a fake Dropbox and a redis-server.
import { startEmulator } from '../src/dropbox-emulator/server.js';
import { EmbeddedRedis } from '../src/redis/embedded-redis.js';

const ACCOUNT = 'dbid:example';

/** The default Markdown builder, except that drafts are not posts and each post is an <article>. */
const entryBuilder: EntryBuilder = {
  isPost: (pathLower) => markdownEntryBuilder.isPost(pathLower) && !pathLower.startsWith('/drafts/'),
  build: (file) => {
    const { title, html } = markdownEntryBuilder.build(file);
    return { title, html: `<article>\n${html}</article>\n` };
  },
};

async function whenIdle(mailroom: MailroomEngine, accountId: string): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const status = await mailroom.status(accountId);
    if (status?.lastError) console.log(`  (retrying after ${status.lastError.kind}: ${status.lastError.message})`);
    if (status?.state === 'idle' && !status.dirty && status.pending === 0 && status.lastSyncedAt) return;
  }
  throw new Error(`${accountId} did not become idle`);
}

async function printEntries(mailroom: MailroomEngine): Promise<void> {
  for (const entry of await mailroom.entries(ACCOUNT)) console.log(`  ${entry.path}  "${entry.title}"  (${entry.html.length} bytes of html)`);
}

const dataDir = await mkdtemp(join(tmpdir(), 'mailroom-example-'));
const redisServer = process.env.REDIS_URL ? undefined : await EmbeddedRedis.start({ dir: join(dataDir, 'redis') });
const emulator = await startEmulator();
emulator.model.addAccount(ACCOUNT, { accessToken: 'example-token' });
emulator.model.writeFile(ACCOUNT, '/Posts/Hello.md', '# Hello, world\n\nThe first post.');
emulator.model.writeFile(ACCOUNT, '/Posts/Second.md', '# Second post\n\nMore words.');
emulator.model.writeFile(ACCOUNT, '/drafts/Unfinished.md', '# Not yet');
emulator.model.writeFile(ACCOUNT, '/photo.jpg', 'not really a jpeg');

const mailroom = await createEngine({
  redisUrl: process.env.REDIS_URL ?? redisServer!.url,
  dataDir: join(dataDir, 'data'),
  dropbox: { apiUrl: emulator.url },
  entryBuilder,
});

mailroom.on('fileSynced', ({ path, bytes, downloaded }) => console.log(`file synced    ${path} (${bytes} bytes${downloaded ? '' : ', already on disk'})`));
mailroom.on('entrySet', ({ entry }) => console.log(`entry set      ${entry.path} "${entry.title}"`));
mailroom.on('entryDropped', ({ path }) => console.log(`entry dropped  ${path}`));

try {
  console.log(`linking ${ACCOUNT}`);
  await mailroom.link(ACCOUNT, { accessToken: 'example-token' });
  await whenIdle(mailroom, ACCOUNT);
  console.log('entries after the first sync:');
  await printEntries(mailroom);

  // Changes in Dropbox; a real host calls notify() from its verified webhook handler.
  emulator.model.writeFile(ACCOUNT, '/Posts/Hello.md', '# Hello again\n\nEdited.');
  emulator.model.remove(ACCOUNT, '/Posts/Second.md');
  await mailroom.notify([ACCOUNT]);
  await whenIdle(mailroom, ACCOUNT);
  console.log('entries after an edit and a deletion:');
  await printEntries(mailroom);
  console.log(`mirror folder: ${mailroom.folder(ACCOUNT)}`);
} finally {
  await mailroom.close();
  await emulator.close();
  await redisServer?.stop();
  await rm(dataDir, { recursive: true, force: true });
}
