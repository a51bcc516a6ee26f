// Property tests of the multipart reader: random bytes and adversarial boundaries end in a parse or a
// MultipartError (nothing else), and any split of a valid body into chunks parses exactly as the whole.
import fc from 'fast-check';
import { MultipartError } from '../../src/matrix/multipart.js';
import { readMultipartMixed } from '../../src/matrix/multipart-reader.js';
import { B, CT } from '../helpers/multipart.js';
import { collect } from '../helpers/streams.js';

const RUNS = { numRuns: 150, seed: 1414 };
const LIMITS = { maxHeaderBytes: 512, maxJsonBytes: 512, maxPreambleBytes: 512 };

async function* pieces(bytes: Buffer, cuts: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    yield bytes.subarray(at, cut);
    at = cut;
  }
  yield bytes.subarray(at);
}

/** What the reader makes of `bytes`: its metadata, part headers, Location and body, or its own error's name. */
async function read(bytes: Buffer, cuts: number[] = [], contentType = CT): Promise<unknown> {
  try {
    const parsed = await readMultipartMixed(pieces(bytes, cuts), contentType, LIMITS);
    return { metadata: parsed.metadata, headers: parsed.headers, location: parsed.location, body: (await collect(parsed.body)).toString('latin1') };
  } catch (error) {
    if (error instanceof MultipartError) return 'MultipartError';
    throw error;
  }
}

const partBody = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
/** A well-formed body whose media bytes are arbitrary but hold no delimiter. */
const validBody = fc.tuple(partBody, fc.constantFrom('\r\n', '\n'), fc.boolean(), fc.option(fc.string({ maxLength: 30 }), { nil: undefined })).map(([media, nl, closing, preamble]) => {
  const safe = Buffer.from(media.toString('latin1').split(`--${B}`).join('-x'), 'latin1');
  return Buffer.concat([
    Buffer.from(`${preamble === undefined ? '' : `${preamble.replace(/--/g, '')}${nl}`}--${B}${nl}Content-Type: application/json${nl}${nl}{}${nl}--${B}${nl}Content-Type: application/octet-stream${nl}${nl}`, 'latin1'),
    safe,
    Buffer.from(`${nl}--${B}${closing ? '--' : ''}${nl}`, 'latin1'),
  ]);
});

test('random bytes: a parse or a MultipartError, never anything else', async () => {
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 5 }), async (bytes, cuts) => {
    await read(Buffer.from(bytes), cuts);
  }), RUNS);
});

test('a valid body parses the same however it is split into chunks', async () => {
  await fc.assert(fc.asyncProperty(validBody, fc.array(fc.nat(), { maxLength: 12 }), async (body, cuts) => {
    const whole = await read(body);
    expect(whole).not.toBe('MultipartError');
    expect(await read(body, cuts)).toEqual(whole);
    // One byte at a time as well: the worst split there is.
    if (cuts.length === 0) expect(await read(body, Array.from({ length: body.length }, (_, i) => i))).toEqual(whole);
  }), RUNS);
});

test('valid bodies with bytes flipped or cut: a parse or a MultipartError', async () => {
  await fc.assert(fc.asyncProperty(validBody, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), async (body, flips, cut) => {
    const mutated = Buffer.from(body);
    for (const [at, byte] of flips) if (mutated.length > 0) mutated[at % mutated.length] = byte;
    await read(mutated.subarray(0, mutated.length - (cut % 4)), [cut]);
  }), RUNS);
});

const BOUNDARY_CHARS = ["'", '(', ')', '+', '_', ',', '-', '.', '/', ':', '=', '?', ' ', 'a', '0', '"', '\\', ';', '\u00e9', '\r', '\n'];
test('adversarial boundaries in the Content-Type and the body: a parse or a MultipartError', async () => {
  const boundary = fc.array(fc.constantFrom(...BOUNDARY_CHARS), { maxLength: 90 }).map((c) => c.join(''));
  const contentType = fc.tuple(boundary, fc.constantFrom('multipart/mixed; boundary=', 'multipart/mixed; boundary="', 'Multipart/Mixed;BOUNDARY=', 'multipart/mixed; boundary=a; boundary=', 'text/plain; boundary='))
    .map(([b, prefix]) => `${prefix}${b}${prefix.endsWith('"') ? '"' : ''}`);
  await fc.assert(fc.asyncProperty(contentType, boundary, partBody, async (type, inBody, media) => {
    const body = Buffer.concat([Buffer.from(`--${inBody}\r\nContent-Type: application/json\r\n\r\n{}\r\n--${inBody}\r\n\r\n`, 'latin1'), media, Buffer.from(`\r\n--${inBody}--`, 'latin1')]);
    await read(body, [], type);
  }), RUNS);
});
