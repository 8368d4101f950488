import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** Dropbox hashes content in 4 MiB blocks (https://www.dropbox.com/developers/reference/content-hash). */
export const CONTENT_HASH_BLOCK_SIZE = 4 * 1024 * 1024;

/**
 * Streaming Dropbox content_hash: SHA-256 of the concatenated raw SHA-256 digests of each 4 MiB block.
 * Chunks may straddle block boundaries, so a download can be hashed as it arrives.
 */
export class ContentHasher {
  private readonly overall: Hash = createHash('sha256');
  private block: Hash = createHash('sha256');
  private blockFill = 0;
  private finished = false;

  update(chunk: Uint8Array): this {
    if (this.finished) throw new Error('ContentHasher.update() after digest()');
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(CONTENT_HASH_BLOCK_SIZE - this.blockFill, chunk.length - offset);
      this.block.update(chunk.subarray(offset, offset + take));
      this.blockFill += take;
      offset += take;
      // Close a block only once it is full, so an exact multiple of 4 MiB never yields an empty extra block.
      if (this.blockFill === CONTENT_HASH_BLOCK_SIZE) this.closeBlock();
    }
    return this;
  }

  /** Lowercase hex. An empty input has no blocks, which gives sha256("") as Dropbox documents. */
  digest(): string {
    if (this.finished) throw new Error('ContentHasher.digest() called twice');
    this.finished = true;
    if (this.blockFill > 0) this.closeBlock();
    return this.overall.digest('hex');
  }

  private closeBlock(): void {
    this.overall.update(this.block.digest());
    this.block = createHash('sha256');
    this.blockFill = 0;
  }
}

export function contentHash(data: Uint8Array): string {
  return new ContentHasher().update(data).digest();
}

/** Hashes a file without holding it in memory. */
export async function hashFile(path: string): Promise<string> {
  const hasher = new ContentHasher();
  for await (const chunk of createReadStream(path)) hasher.update(chunk as Buffer);
  return hasher.digest();
}
