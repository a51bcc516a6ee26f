// The PEM subset of Dendrite's and matrix-media-repo's key files: written as Go's pem.EncodeToMemory writes,
// read leniently (indentation, trailing blanks) but strictly about where blocks start and end.
import { KeyFileError, parseKeyFile } from '../../src/keys/key-files.js';
import { encodePemBlock, looksLikePem, parsePemBlocks, PemError } from '../../src/keys/pem.js';
import { keyFileVectors } from '../helpers/keys.js';

describe('encoding as Go does', () => {
  test('headers in sorted order, whatever order they are given in', () => {
    expect(encodePemBlock('T', { b: '2', A: '1', a: '3' }, Buffer.from('hi'))).toBe('-----BEGIN T-----\nA: 1\na: 3\nb: 2\n\naGk=\n-----END T-----\n');
  });

  test('a body over 64 columns is wrapped at 64, each line ending in a newline', () => {
    const body = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
    const base64 = body.toString('base64');
    expect(encodePemBlock('T', { K: 'v' }, body)).toBe(`-----BEGIN T-----\nK: v\n\n${base64.slice(0, 64)}\n${base64.slice(64)}\n-----END T-----\n`);
  });

  test('no headers: no blank line; no body: no body lines', () => {
    expect(encodePemBlock('T', {}, Buffer.from('hi'))).toBe('-----BEGIN T-----\naGk=\n-----END T-----\n');
    expect(encodePemBlock('T', {}, new Uint8Array(0))).toBe('-----BEGIN T-----\n-----END T-----\n');
  });
});

describe('reading', () => {
  test('indented and trailing-blank lines are read as written', () => {
    const { dendrite } = keyFileVectors();
    const indented = dendrite.file.split('\n').map((line) => (line === '' ? line : `  ${line} \t`)).join('\n');
    expect(looksLikePem(indented)).toBe(true);
    expect(parseKeyFile(indented, 'k')).toEqual(parseKeyFile(dendrite.file, 'k'));
  });

  test('a BEGIN marker must start its line (after blanks) to make the file PEM', () => {
    expect(looksLikePem('x-----BEGIN MMR PRIVATE KEY-----\n')).toBe(false);
    expect(looksLikePem('ed25519 a -----BEGIN MMR PRIVATE KEY-----\n')).toBe(false);
    expect(() => parseKeyFile('ed25519 a -----BEGIN MMR PRIVATE KEY-----', 'k')).toThrow(
      new KeyFileError('k', 'line 1: expected "ed25519 <version> <base64 seed>", found 6 fields'),
    );
  });

  test('a cut-off END line is refused as one, not read as body text', () => {
    const { mmr } = keyFileVectors();
    expect(() => parseKeyFile(mmr.file.replace('-----END MMR PRIVATE KEY-----', '-----END MMR'), 'k')).toThrow(
      new KeyFileError('k', 'line 6: expected "-----END MMR PRIVATE KEY-----"'),
    );
  });

  test('blocks, headers and body as read, with the BEGIN line of each', () => {
    const blocks = parsePemBlocks('\n-----BEGIN A-----\nX: 1\n\nQUJD\nREVG\n-----END A-----\n-----BEGIN B-----\nRw==\n-----END B-----\n');
    expect(blocks).toEqual([
      { type: 'A', headers: new Map([['X', '1']]), body: 'QUJDREVG', line: 2 },
      { type: 'B', headers: new Map(), body: 'Rw==', line: 8 },
    ]);
    expect(() => parsePemBlocks('-----BEGIN A-----\nQUJD\n')).toThrow(PemError);
  });
});
