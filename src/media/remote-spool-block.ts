// One block of a spool in memory: the chunks it was written in, as they came (no copy), with their offsets.

export class SpoolBlock {
  readonly chunks: Buffer[] = [];
  /** Where each chunk starts in the block. */
  private readonly starts: number[] = [];
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
