import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalFolderMirror } from './dropbox-emulator/local-folder.js';
import { startEmulator, type RunningEmulator } from './dropbox-emulator/server.js';
import { silentLogger, type Logger } from './logger.js';

export const DEMO_ACCOUNT = 'dbid:demo';

export interface Demo {
  emulator: RunningEmulator;
  appSecret: string;
  accessToken: string;
  dropboxFolder: string;
  /** Starts watching the folder; webhooks go to the engine's URL. */
  watch(webhookUrl: string): void;
  close(): Promise<void>;
}

/**
 * `npm start` without Dropbox credentials: the project's Dropbox emulator serves a local folder as
 * one account and sends the engine signed webhooks when it changes, so the whole engine runs for
 * real on one machine.
 */
export async function startDemo(dataDir: string, options: { log?: Logger } = {}): Promise<Demo> {
  const appSecret = randomBytes(16).toString('hex');
  const accessToken = `demo-${randomBytes(8).toString('hex')}`;
  const dropboxFolder = join(dataDir, 'dropbox');
  // The welcome post goes into a folder made now only: one the user emptied stays empty.
  if ((await mkdir(dropboxFolder, { recursive: true })) !== undefined) {
    await mkdir(join(dropboxFolder, 'Posts'), { recursive: true });
    await writeFile(join(dropboxFolder, 'Posts', 'Hello world.md'), '# Hello world\n\nDrop Markdown files into this folder and they become entries.\n');
  }
  const emulator = await startEmulator({ appSecret });
  emulator.model.addAccount(DEMO_ACCOUNT, { accessToken });
  // The emulator starts empty: it serves the folder as it is before the engine lists it. Otherwise
  // a restart's first listing (the old cursor is reset, since this emulator never issued it) would
  // find an empty Dropbox and delete every mirrored file and entry, then make them all again.
  // A path it cannot read keeps its files in the account (and the engine's mirror and entries): the
  // log is where the user learns that its changes wait.
  const log = (options.log ?? silentLogger).child({ component: 'demo-folder' });
  const mirror = new LocalFolderMirror({ model: emulator.model, accountId: DEMO_ACCOUNT, dir: dropboxFolder, intervalMs: 1_000, log });
  await mirror.rescan();
  return {
    emulator,
    appSecret,
    accessToken,
    dropboxFolder,
    watch(webhookUrl) {
      mirror.notify({ url: webhookUrl, appSecret });
      mirror.start();
    },
    async close() {
      await mirror.stop();
      await emulator.close();
    },
  };
}
