import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONTENT_HASH_BLOCK_SIZE, ContentHasher, contentHash, hashFile } from '../src/dropbox/content-hash.js';

// The SDK ships its own hasher but does not export it from the package index, so load it by path as an
// independent oracle. Its CommonJS build is unusable (it calls `crypto.default.createHash`, which is
// undefined under CJS interop), hence the ES build.
type SdkHasherModule = typeof import('dropbox/types/content-hasher.js');
const sdkHasher = (await import('dropbox/es/src/content-hasher.js' as string)) as SdkHasherModule;

/** The published algorithm, written out literally: split, hash blocks, concatenate raw digests, hash. */
function referenceContentHash(data: Uint8Array): string {
  const blockDigests: Buffer[] = [];
  for (let start = 0; start < data.length; start += 4194304) {
    blockDigests.push(createHash('sha256').update(data.subarray(start, start + 4194304)).digest());
  }
  return createHash('sha256').update(Buffer.concat(blockDigests)).digest('hex');
}

/** Deterministic, non-repeating-per-block bytes so a block-order bug changes the hash. */
function deterministicBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = 0x12345678;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

const EMPTY_HASH = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const multiBlock = deterministicBytes(9 * 1024 * 1024 + 12345);

describe('contentHash', () => {
  it('hashes empty input to sha256 of the empty string (no blocks)', () => {
    expect(contentHash(new Uint8Array())).toBe(EMPTY_HASH);
    expect(new ContentHasher().digest()).toBe(EMPTY_HASH);
    expect(sdkHasher.contentHash(Buffer.alloc(0))).toBe(EMPTY_HASH);
  });

  it('is not a plain sha256 for small input (one block is hashed twice)', () => {
    const data = new TextEncoder().encode('hello');
    const blockDigest = createHash('sha256').update(data).digest();
    expect(contentHash(data)).toBe(createHash('sha256').update(blockDigest).digest('hex'));
    expect(contentHash(data)).not.toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('agrees with the literal algorithm and the SDK hasher on a multi-block buffer', () => {
    const expected = referenceContentHash(multiBlock);
    expect(contentHash(multiBlock)).toBe(expected);
    expect(sdkHasher.contentHash(Buffer.from(multiBlock))).toBe(expected);
  });

  it('gives the same hash when streamed in odd chunk sizes that straddle block boundaries', () => {
    const expected = referenceContentHash(multiBlock);
    for (const chunkSize of [1_000_003, 4_194_303, 4_194_305, 7_777_777]) {
      const hasher = new ContentHasher();
      for (let offset = 0; offset < multiBlock.length; offset += chunkSize) {
        hasher.update(multiBlock.subarray(offset, offset + chunkSize));
      }
      expect(hasher.digest(), `chunk size ${chunkSize}`).toBe(expected);
    }
  });

  it('does not add an empty block for input that is an exact multiple of 4 MiB', () => {
    const exact = multiBlock.subarray(0, 2 * CONTENT_HASH_BLOCK_SIZE);
    const expected = referenceContentHash(exact);
    expect(contentHash(exact)).toBe(expected);
    const hasher = new ContentHasher();
    hasher.update(exact.subarray(0, CONTENT_HASH_BLOCK_SIZE));
    hasher.update(new Uint8Array());
    hasher.update(exact.subarray(CONTENT_HASH_BLOCK_SIZE));
    expect(hasher.digest()).toBe(expected);
  });

  it('refuses to be reused after digest', () => {
    const hasher = new ContentHasher();
    hasher.digest();
    expect(() => hasher.update(new Uint8Array([1]))).toThrow();
  });

  describe('hashFile', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailroom-hash-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('streams a file to the same hash as the buffer', async () => {
      const path = join(dir, 'big.bin');
      writeFileSync(path, multiBlock);
      expect(await hashFile(path)).toBe(referenceContentHash(multiBlock));
    });

    it('hashes an empty file to the empty vector', async () => {
      const path = join(dir, 'empty.bin');
      writeFileSync(path, '');
      expect(await hashFile(path)).toBe(EMPTY_HASH);
    });
  });
});
