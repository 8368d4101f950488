import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localPathFor, UnsafePathError } from '../../src/sync/paths.js';
import { mirrorFolder } from '../../src/sync/sync-deps.js';
import { expectedMirror, readMirror, startHarness, type Harness } from '../support/sync-harness.js';

/**
 * Random hostile listings, end to end through the SDK and the emulator: names with traversal
 * attempts, control characters, backslashes, over-long segments, case collisions, and a file
 * replaced by a folder of the same name and back. Whatever the listing, nothing is ever written
 * outside the account's folder, and the mirror converges to the safe part of the Dropbox tree.
 */
let h: Harness;
beforeAll(async () => { h = await startHarness(); });
afterAll(async () => { await h.close(); });

const segment = fc.oneof(
  fc.constantFrom('..', '.', '...', '..\\..', 'C:', 'c:evil', '\u0000', 'a\u0000b', 'x\u0007', 'con', 'Ab', 'aB', 'AB', 'é', 'e\u0301'),
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.integer({ min: 250, max: 260 }).map((n) => 'x'.repeat(n)),
);
const path = fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
const operation = fc.oneof(
  fc.record({ op: fc.constant('write' as const), path, body: fc.string({ maxLength: 20 }) }),
  fc.record({ op: fc.constant('remove' as const), path }),
  fc.record({ op: fc.constant('flip' as const), path }),
);

/** Every file under `dir` (absolute paths). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else out.push(full);
  }
  return out;
}

const isSafe = (root: string, display: string) => {
  try {
    localPathFor(root, display);
    return true;
  } catch (error) {
    if (error instanceof UnsafePathError) return false;
    throw error;
  }
};

let run = 0;
describe('hostile listings (property)', () => {
  it('never write outside the account folder and converge to the safe part of the tree', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 12 }), fc.array(operation, { maxLength: 8 }), async (first, second) => {
        const account = `dbid:hostile-${++run}`;
        const model = h.emulator.model;
        model.addAccount(account, { accessToken: `tok-${run}` });
        const apply = (ops: typeof first) => {
          for (const o of ops) {
            try {
              if (o.op === 'write') model.writeFile(account, o.path, o.body);
              else if (o.op === 'remove') model.remove(account, o.path);
              else {
                // A file replaced by a folder of the same name, or back.
                const existing = model.listTree(account).find((i) => i.pathLower === o.path.toLowerCase());
                if (existing) model.remove(account, o.path);
                if (existing?.kind === 'file') model.mkdir(account, o.path);
                else model.writeFile(account, o.path, 'flipped');
              }
            } catch {
              // the model refused it (like Dropbox would): nothing to list
            }
          }
        };
        apply(first);
        await h.linkAccount(account, { accessToken: `tok-${run}` });
        await h.waitForIdle(account);
        apply(second);
        await h.engine.notify([account]);
        await h.waitForIdle(account);

        const root = mirrorFolder(h.dataDir, account);
        const written = await filesUnder(h.dataDir);
        const outside = written.filter((f) => {
          const rel = relative(h.dataDir, f);
          return !rel.startsWith('mirrors/') && !rel.startsWith('staging/');
        });
        expect(outside).toEqual([]);
        for (const file of await filesUnder(root)) expect(relative(root, file).startsWith('..')).toBe(false);

        // A file is expected when its path is safe (which covers every folder above it).
        const expected = new Map([...expectedMirror(h.emulator, account)].filter(([p]) => isSafe(root, p)));
        expect(await readMirror(h.dataDir, account)).toEqual(expected);
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
