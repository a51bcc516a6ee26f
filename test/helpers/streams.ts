// Stream and promise helpers the tests share: read a stream whole, feed bytes in chunks, get a rejection's error.

/** Every chunk of `stream`, concatenated. */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** `bytes` in fresh copies (as a socket would hand them over), each as long as `size` says. */
export async function* chunked(bytes: Buffer, size: (remaining: number) => number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < bytes.length; ) {
    const length = Math.max(1, Math.min(size(bytes.length - offset), bytes.length - offset));
    yield Buffer.from(bytes.subarray(offset, offset + length)); // a fresh copy, as a socket would hand over
    offset += length;
  }
}

/** `bytes` as a one-chunk source. */
export async function* once(bytes: Buffer): AsyncGenerator<Buffer> {
  yield bytes;
}

/** The error `promise` rejects with; throws if it resolves. */
export async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}
