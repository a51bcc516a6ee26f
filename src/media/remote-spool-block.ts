// One block of a spool in memory: the chunks it was written in, as they came (no copy), with their offsets;
// joined into one buffer, once, when a complete block is read by a client.

export class SpoolBlock {
  chunks: Buffer[] = [];
  /** Where each chunk starts in the block. */
  private starts: number[] = [];
  length = 0;

  static of(bytes: Buffer): SpoolBlock {
    const block = new SpoolBlock();
    block.add(bytes);
    return block;
  }

  add(chunk: Buffer): void {
    this.starts.push(this.length);
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /**
   * The block as one buffer (a copy made once, then shared): clients behind the writer get a block in one
   * write each instead of one per upstream chunk, which with a hundred clients cost more than the copy.
   */
  join(): void {
    if (this.chunks.length <= 1) return;
    this.chunks = [Buffer.concat(this.chunks, this.length)];
    this.starts = [0];
  }

  /** Bytes [from, to) of the block as views of its chunks; `to` at most the length it has now. */
  slice(from: number, to: number): Buffer[] {
    let low = 0;
    for (let high = this.starts.length - 1; low < high; ) {
      const middle = (low + high + 1) >> 1;
      if (this.starts[middle]! <= from) low = middle;
      else high = middle - 1;
    }
    const views: Buffer[] = [];
    for (let i = low; i < this.chunks.length && this.starts[i]! < to; i++) {
      const start = this.starts[i]!;
      views.push(this.chunks[i]!.subarray(Math.max(0, from - start), to - start));
    }
    return views;
  }
}
