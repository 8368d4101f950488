import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Dropbox, type files } from 'dropbox';
import { createDropboxFetch } from '../src/dropbox/origin-rewrite.js';
import { writeFileAtomically } from '../src/sync/write-file.js';
import { pool } from './lib.js';

/**
 * The baseline of figures 4 and 5: what a bare script does with the same official SDK and no
 * engine around it: list every page, download with fixed concurrency, write each file (plain
 * `writeFile`: no temp file, fsync, rename, mtime, index or entries), or with `atomic` the engine's
 * own temp-file + fsync + rename write, to show what durability alone costs.
 */
export class BareSync {
  private readonly client: Dropbox;
  cursor = '';

  constructor(emulatorUrl: string, accessToken: string, private readonly root: string, private readonly pageLimit: number, private readonly atomic = false) {
    this.client = new Dropbox({ accessToken, fetch: createDropboxFetch({ api: emulatorUrl, content: emulatorUrl }, { timeoutMs: 30_000 }) });
  }

  /** Lists everything (or what changed since the last cursor) and returns the files to fetch. */
  async list(): Promise<files.FileMetadataReference[]> {
    const found: files.FileMetadataReference[] = [];
    let page = this.cursor
      ? (await this.client.filesListFolderContinue({ cursor: this.cursor })).result
      : (await this.client.filesListFolder({ path: '', recursive: true, limit: this.pageLimit })).result;
    for (;;) {
      for (const entry of page.entries) if (entry['.tag'] === 'file') found.push(entry);
      this.cursor = page.cursor;
      if (!page.has_more) return found;
      page = (await this.client.filesListFolderContinue({ cursor: page.cursor })).result;
    }
  }

  async download(entries: readonly files.FileMetadataReference[], concurrency: number): Promise<void> {
    await pool(entries, concurrency, async (entry) => {
      const response = await this.client.filesDownload({ path: `rev:${entry.rev}` });
      const bytes = (response.result as unknown as { fileBinary: Buffer }).fileBinary;
      const target = join(this.root, entry.path_display!);
      if (this.atomic) {
        await writeFileAtomically(target, bytes, new Date(entry.client_modified));
      } else {
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, bytes);
      }
    });
  }

  /**
   * Downloads with nothing done with the bytes: the floor of figure 4, what the SDK, the network and
   * the emulator allow at this concurrency before any file is written.
   */
  async fetchOnly(entries: readonly files.FileMetadataReference[], concurrency: number): Promise<void> {
    await pool(entries, concurrency, async (entry) => {
      await this.client.filesDownload({ path: `rev:${entry.rev}` });
    });
  }

  async sync(concurrency: number): Promise<number> {
    const entries = await this.list();
    await this.download(entries, concurrency);
    return entries.length;
  }
}
