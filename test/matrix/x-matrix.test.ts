import { readFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeBase64 } from '../../src/matrix/base64.js';
import { createSigner } from '../../src/matrix/ed25519.js';
import { MatrixError } from '../../src/matrix/errors.js';
import {
  authorizationHeaderValues,
  buildAuthorizationHeader,
  MATRIX_SCOPED_SCHEME,
  MSC4100_SCOPED_SCHEME,
  parseAuthorization,
  requestSigningJson,
  verifyRequestSignature,
  X_MATRIX_SCHEME,
  type FederationRequest,
} from '../../src/matrix/x-matrix.js';
import { runPython } from '../helpers/python-worker.js';
import { testWithPython } from '../helpers/python-available.js';

interface KeyFiles {
  mmr: { file: string; keyId: string };
  xMatrix: { signedJson: { method: string; uri: string; origin: string; destination: string }; sig: string };
}
const keyFiles = JSON.parse(readFileSync(new URL('../fixtures/key-files.json', import.meta.url), 'utf8')) as KeyFiles;
const mmrSigner = createSigner(decodeBase64(/\n\n([A-Za-z0-9+/=]+)\n/.exec(keyFiles.mmr.file)![1]!));

const SIG = 'PKzPGopnkPWCSEyO2C1h6zRCJh+OhOJFB2S95/fFPD+AyDZuWoGTSg7ZIL/uZKS3jt2vCrUdoVxbaGq6URHgBw';

describe('requestSigningJson', () => {
  const base = { method: 'GET', uri: '/_matrix/federation/v1/media/download/x?timeout_ms=5000', origin: 'a.example', destination: 'b.example' };

  test('a request without a body has no content key', () => {
    expect(requestSigningJson(base)).toEqual(base);
    expect(Object.keys(requestSigningJson({ ...base, content: undefined }))).not.toContain('content');
    expect(Object.keys(requestSigningJson({ ...base, content: null }))).not.toContain('content');
  });

  test('a request with a body carries it as content', () => {
    expect(requestSigningJson({ ...base, method: 'POST', content: { a: 1 } })).toEqual({ ...base, method: 'POST', content: { a: 1 } });
  });
});

describe('buildAuthorizationHeader', () => {
  test('reproduces the X-Matrix vector of test/fixtures/key-files.json in the exact sender form', () => {
    const header = buildAuthorizationHeader(keyFiles.xMatrix.signedJson, keyFiles.mmr.keyId, mmrSigner);
    expect(header).toBe(`X-Matrix origin="example.org",destination="remote.example",key="ed25519:e5d0oC",sig="${keyFiles.xMatrix.sig}"`);
  });

  test('MSC4100 scoped headers sign the same JSON under another scheme name', () => {
    const scoped = buildAuthorizationHeader(keyFiles.xMatrix.signedJson, keyFiles.mmr.keyId, mmrSigner, MSC4100_SCOPED_SCHEME);
    expect(scoped).toBe(`X-MSC4100-Scoped origin="example.org",destination="remote.example",key="ed25519:e5d0oC",sig="${keyFiles.xMatrix.sig}"`);
  });

  test('refuses invalid server names and key ids instead of writing a broken header', () => {
    const request = keyFiles.xMatrix.signedJson;
    expect(() => buildAuthorizationHeader({ ...request, origin: 'a"b' }, 'ed25519:k', mmrSigner)).toThrow(/invalid server name/);
    expect(() => buildAuthorizationHeader({ ...request, destination: '' }, 'ed25519:k', mmrSigner)).toThrow(/invalid server name/);
    expect(() => buildAuthorizationHeader(request, 'ed25519:k"x', mmrSigner)).toThrow(/key id/);
    expect(() => buildAuthorizationHeader(request, 'rsa:k', mmrSigner)).toThrow(/key id/);
  });

  testWithPython('python signedjson verifies a signed PUT with a body, rebuilt the way the spec reference code does', async () => {
    const request: FederationRequest = {
      method: 'PUT',
      uri: '/_matrix/federation/v1/send/123?x=%20y',
      origin: 'origin.example:8448',
      destination: '[::1]:8448',
      content: { pdus: [], 日: '\u{1F600}' },
    };
    const header = buildAuthorizationHeader(request, 'ed25519:e5d0oC', mmrSigner);
    const script = [
      'import sys, json, re, base64',
      'from signedjson.key import decode_verify_key_bytes',
      'from signedjson.sign import verify_signed_json',
      'req = json.load(sys.stdin)',
      'params = dict(re.findall(r\'(\\w+)="([^"]*)"\', req["header"]))',
      'obj = {"method": req["method"], "uri": req["uri"], "origin": params["origin"], "destination": params["destination"], "content": req["content"]}',
      'obj["signatures"] = {params["origin"]: {params["key"]: params["sig"]}}',
      'key = decode_verify_key_bytes(params["key"], base64.b64decode(req["publicKey"]))',
      'verify_signed_json(obj, params["origin"], key)',
      'print("ok")',
    ].join('\n');
    const input = { ...request, header, publicKey: Buffer.from(mmrSigner.publicKey).toString('base64') };
    expect((await runPython(script, JSON.stringify(input))).trim()).toBe('ok');
  });
});

describe('verifyRequestSignature', () => {
  const request: FederationRequest = { method: 'POST', uri: '/_matrix/x?a=1', origin: 'a.example', destination: 'b.example', content: { k: 'v' } };
  // Built inside each test, not at collection or in beforeAll: a parser that throws then fails a test, not the file.
  const signature = (): string => parseAuthorization([buildAuthorizationHeader(request, 'ed25519:1', mmrSigner)])!.signatures['ed25519:1']!;

  test('verifies the request it was built for', () => {
    expect(verifyRequestSignature(request, 'ed25519:1', signature(), mmrSigner.publicKey)).toBe(true);
  });

  test.each([
    ['method', { method: 'PUT' }],
    ['uri', { uri: '/_matrix/x?a=2' }],
    ['uri encoding', { uri: '/_matrix/x?a=%31' }],
    ['origin', { origin: 'c.example' }],
    ['destination', { destination: 'c.example' }],
    ['content', { content: { k: 'w' } }],
    ['missing content', { content: undefined }],
  ])('fails when the %s differs', (_name, change) => {
    expect(verifyRequestSignature({ ...request, ...change }, 'ed25519:1', signature(), mmrSigner.publicKey)).toBe(false);
  });

  test('fails for another key id or a garbage signature, without throwing', () => {
    expect(verifyRequestSignature(request, 'ed25519:2', 'AAAA', mmrSigner.publicKey)).toBe(false);
    expect(verifyRequestSignature(request, 'ed25519:1', '***', mmrSigner.publicKey)).toBe(false);
  });
});

describe('parseAuthorization: valid headers', () => {
  const expectParsed = (values: string[], expected: { origin: string; destination?: string; signatures: Record<string, string> }, scheme = X_MATRIX_SCHEME) => {
    const parsed = parseAuthorization(values, scheme);
    expect(parsed).toEqual({ scheme, ...expected });
  };
  const full = { origin: 'origin.example', destination: 'dest.example', signatures: { 'ed25519:key1': SIG } };

  test.each<[string, string]>([
    ['the spec example form', `X-Matrix origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['unquoted values, colon in key', `X-Matrix origin=origin.example,destination=dest.example,key=ed25519:key1,sig=${SIG}`],
    ['mixed quoting', `X-Matrix origin=origin.example,destination="dest.example",key=ed25519:key1,sig="${SIG}"`],
    ['lower-case scheme', `x-matrix origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['upper-case scheme', `X-MATRIX origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['upper-case parameter names', `X-Matrix ORIGIN="origin.example",Destination="dest.example",KEY="ed25519:key1",Sig="${SIG}"`],
    ['spaces and tabs around commas', `X-Matrix origin="origin.example" ,\tdestination="dest.example"\t, key="ed25519:key1" , sig="${SIG}"`],
    ['several spaces after the scheme', `X-Matrix    origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['a tab after the scheme', `X-Matrix\torigin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['leading whitespace', `  X-Matrix origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['any parameter order', `X-Matrix sig="${SIG}",key="ed25519:key1",destination="dest.example",origin="origin.example"`],
    ['unknown parameters ignored', `X-Matrix foo="bar",origin="origin.example",destination="dest.example",x=1,key="ed25519:key1",sig="${SIG}",foo=again`],
    ['a comma inside an unknown quoted value', `X-Matrix note="a, b=c",origin="origin.example",destination="dest.example",key="ed25519:key1",sig="${SIG}"`],
    ['backslash escapes in quoted values', `X-Matrix origin="origin\\.example",destination="dest.example",key="ed25519\\:key1",sig="${SIG}"`],
    ['signature as an alias of sig', `X-Matrix origin="origin.example",destination="dest.example",key="ed25519:key1",signature="${SIG}"`],
    ['whitespace around "="', `X-Matrix origin = "origin.example",destination= "dest.example",key ="ed25519:key1",sig=${SIG}`],
    ['empty list elements', `X-Matrix ,origin="origin.example",,destination="dest.example", ,key="ed25519:key1",sig="${SIG}",`],
    ['padded Base64 signature', `X-Matrix origin="origin.example",destination="dest.example",key="ed25519:key1",sig=${SIG}==`],
  ])('%s', (_name, header) => {
    const parsed = parseAuthorization([header]);
    expect(parsed?.origin).toBe(full.origin);
    expect(parsed?.destination).toBe(full.destination);
    expect(Object.keys(parsed!.signatures)).toEqual(['ed25519:key1']);
    expect(parsed!.signatures['ed25519:key1']!.replace(/=+$/, '')).toBe(SIG);
  });

  test('destination may be absent (old senders)', () => {
    expectParsed([`X-Matrix origin="origin.example",key="ed25519:key1",sig="${SIG}"`], { origin: 'origin.example', signatures: { 'ed25519:key1': SIG } });
  });

  test('server names with ports and IPv6 literals', () => {
    expectParsed([`X-Matrix origin=origin.example:8448,destination="[::1]:8448",key=ed25519:a_1,sig=${SIG}`], {
      origin: 'origin.example:8448',
      destination: '[::1]:8448',
      signatures: { 'ed25519:a_1': SIG },
    });
  });

  test('several headers are merged into one signature set', () => {
    expectParsed(
      [
        `X-Matrix origin="origin.example",destination="dest.example",key="ed25519:a",sig="AAAA"`,
        'Bearer some-token',
        `X-Matrix origin="origin.example",key="ed25519:b",sig="BBBB"`,
        `X-Matrix origin="origin.example",destination="dest.example",key="ed25519:a",sig="AAAA"`,
      ],
      { origin: 'origin.example', destination: 'dest.example', signatures: { 'ed25519:a': 'AAAA', 'ed25519:b': 'BBBB' } },
    );
  });

  test('no header of the scheme gives null (the caller answers 401)', () => {
    expect(parseAuthorization([])).toBeNull();
    expect(parseAuthorization(['Bearer abc', 'Basic dXNlcjpwYXNz', ''])).toBeNull();
    expect(parseAuthorization([`X-Matrix-Scoped origin="o.example",key="ed25519:a",sig="AAAA"`])).toBeNull();
    expect(parseAuthorization([`X-Matrixorigin="o.example",key="ed25519:a",sig="AAAA"`])).toBeNull();
  });

  test('MSC4100 scoped schemes are parsed by the same code and kept apart from X-Matrix', () => {
    const headers = [
      `X-Matrix origin="o.example",key="ed25519:legacy",sig="AAAA"`,
      `X-MSC4100-Scoped origin="o.example",key="ed25519:scoped",sig="BBBB"`,
      `x-matrix-scoped origin="o.example",key="ed25519:stable",sig="CCCC"`,
    ];
    expectParsed(headers, { origin: 'o.example', signatures: { 'ed25519:legacy': 'AAAA' } });
    expectParsed(headers, { origin: 'o.example', signatures: { 'ed25519:scoped': 'BBBB' } }, MSC4100_SCOPED_SCHEME);
    expectParsed(headers, { origin: 'o.example', signatures: { 'ed25519:stable': 'CCCC' } }, MATRIX_SCOPED_SCHEME);
  });

  test('a header built by buildAuthorizationHeader parses back and verifies', () => {
    const request = { method: 'GET', uri: '/_matrix/federation/v1/media/download/abc', origin: 'o.example', destination: 'd.example' };
    const parsed = parseAuthorization([buildAuthorizationHeader(request, 'ed25519:k', mmrSigner)])!;
    expect(parsed.origin).toBe('o.example');
    expect(parsed.destination).toBe('d.example');
    expect(verifyRequestSignature(request, 'ed25519:k', parsed.signatures['ed25519:k']!, mmrSigner.publicKey)).toBe(true);
  });
});

describe('parseAuthorization: malformed headers are 400 M_UNAUTHORIZED', () => {
  const ok = `origin="o.example",destination="d.example",key="ed25519:k",sig="AAAA"`;

  test.each<[string, string[], RegExp]>([
    ['duplicate origin', [`X-Matrix origin="o.example",origin="o.example",key="ed25519:k",sig="AAAA"`], /duplicate parameter origin/],
    ['duplicate in another case', [`X-Matrix KEY="ed25519:k",origin="o.example",key="ed25519:k",sig="AAAA"`], /duplicate parameter key/],
    ['sig and its alias signature', [`X-Matrix origin="o.example",key="ed25519:k",sig="AAAA",signature="AAAA"`], /duplicate parameter sig/],
    ['duplicate destination', [`X-Matrix ${ok},destination="d.example"`], /duplicate parameter destination/],
    ['missing origin', [`X-Matrix key="ed25519:k",sig="AAAA"`], /missing origin/],
    ['missing key', [`X-Matrix origin="o.example",sig="AAAA"`], /missing key/],
    ['missing sig', [`X-Matrix origin="o.example",key="ed25519:k"`], /missing sig/],
    ['no parameters at all', ['X-Matrix'], /missing origin/],
    ['only whitespace after the scheme', ['X-Matrix   '], /missing origin/],
    ['origin with a path', [`X-Matrix origin="o.example/x",key="ed25519:k",sig="AAAA"`], /origin is not a valid server name/],
    ['origin with traversal', [`X-Matrix origin="../..",key="ed25519:k",sig="AAAA"`], /origin is not a valid server name/],
    ['non-ASCII origin', [`X-Matrix origin="exämple.org",key="ed25519:k",sig="AAAA"`], /origin is not a valid server name/],
    ['empty quoted origin', [`X-Matrix origin="",key="ed25519:k",sig="AAAA"`], /origin is not a valid server name/],
    ['invalid destination', [`X-Matrix origin="o.example",destination="d example",key="ed25519:k",sig="AAAA"`], /destination is not a valid server name/],
    ['origins differ across headers', [`X-Matrix ${ok}`, `X-Matrix origin="p.example",key="ed25519:j",sig="BBBB"`], /disagree on origin/],
    ['destinations differ across headers', [`X-Matrix ${ok}`, `X-Matrix origin="o.example",destination="e.example",key="ed25519:j",sig="BBBB"`], /disagree on destination/],
    ['one key, two signatures', [`X-Matrix ${ok}`, `X-Matrix origin="o.example",key="ed25519:k",sig="BBBB"`], /two different signatures for key ed25519:k/],
    ['a good header and a broken one', [`X-Matrix ${ok}`, 'X-Matrix origin='], /missing value for parameter origin/],
    ['unterminated quoted value', [`X-Matrix origin="o.example,key=ed25519:k,sig=AAAA`], /unterminated quoted value/],
    ['backslash before the end', [`X-Matrix origin="o.example",key="ed25519:k",sig="AAAA\\`], /unterminated quoted value/],
    ['no "=" after a name', [`X-Matrix origin"o.example",key="ed25519:k",sig="AAAA"`], /expected "=" after parameter origin/],
    ['empty unquoted value', [`X-Matrix origin=,key="ed25519:k",sig="AAAA"`], /missing value for parameter origin/],
    ['no comma between parameters', [`X-Matrix origin="o.example" key="ed25519:k",sig="AAAA"`], /expected ","/],
    ['trailing garbage after a value', [`X-Matrix ${ok} trailing`], /expected ","/],
    ['scheme glued to a comma', [`X-Matrix,${ok}`], /scheme must be followed by a space/],
    ['scheme glued to "="', [`X-Matrix=${ok}`], /scheme must be followed by a space/],
    ['a parameter without a name', [`X-Matrix =foo,${ok}`], /expected a parameter name/],
    ['punctuation instead of parameters', ['X-Matrix !!!'], /expected "=" after parameter !!!/],
    ['a quote in a name', [`X-Matrix "origin"="o.example",key="ed25519:k",sig="AAAA"`], /expected a parameter name/],
    ['a non-ASCII parameter name', [`X-Matrix ørigin="o.example",${ok}`], /expected a parameter name/],
    ['a control character in a quoted value', [`X-Matrix origin="o.exa\u0001mple",key="ed25519:k",sig="AAAA"`], /control character/],
    ['a NUL in a quoted value', [`X-Matrix origin="o.example\0",key="ed25519:k",sig="AAAA"`], /control character/],
    ['a line feed in a quoted value', [`X-Matrix origin="o.example",key="ed25519:k\n",sig="AAAA"`], /control character/],
    ['key without an algorithm', [`X-Matrix origin="o.example",key="k",sig="AAAA"`], /key is not a key id/],
    ['key with a slash', [`X-Matrix origin="o.example",key="ed25519:a/b",sig="AAAA"`], /key is not a key id/],
    ['signature not Base64', [`X-Matrix origin="o.example",key="ed25519:k",sig="%%%"`], /sig is not Base64/],
    ['empty signature', [`X-Matrix origin="o.example",key="ed25519:k",sig=""`], /sig is not Base64/],
    ['a huge signature', [`X-Matrix origin="o.example",key="ed25519:k",sig="${'A'.repeat(5000)}"`], /sig is not Base64/],
  ])('%s', (_name, values, message) => {
    let error: unknown;
    try {
      parseAuthorization(values);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(MatrixError);
    expect((error as MatrixError).status).toBe(400);
    expect((error as MatrixError).errcode).toBe('M_UNAUTHORIZED');
    expect((error as MatrixError).message).toMatch(/^Malformed X-Matrix Authorization header: /);
    expect((error as MatrixError).message).toMatch(message);
  });

  test('errors of a scoped scheme name that scheme', () => {
    expect(() => parseAuthorization(['X-MSC4100-Scoped key="ed25519:k"'], MSC4100_SCOPED_SCHEME)).toThrow(
      'Malformed X-MSC4100-Scoped Authorization header: missing origin',
    );
  });
});

describe('authorizationHeaderValues over real HTTP', () => {
  test('finds every Authorization header, which req.headers would collapse to the first', async () => {
    const received = new Promise<IncomingMessage>((resolve) => {
      const server = createServer((req, res) => {
        resolve(req);
        res.end();
        server.close();
      });
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const headers = [`X-Matrix origin="o.example",key="ed25519:a",sig="AAAA"`, `X-Matrix origin="o.example",key="ed25519:b",sig="BBBB"`];
        // No keep-alive agent: the connection ends with the response, so the closed server leaves nothing open.
        httpRequest({ host: '127.0.0.1', port, path: '/_matrix/x', agent: false, headers: { Authorization: headers } }, (res) => res.resume()).end();
      });
    });
    const req = await received;
    expect(req.headers.authorization).toBe(`X-Matrix origin="o.example",key="ed25519:a",sig="AAAA"`);
    const values = authorizationHeaderValues(req.rawHeaders);
    expect(values).toHaveLength(2);
    expect(parseAuthorization(values)?.signatures).toEqual({ 'ed25519:a': 'AAAA', 'ed25519:b': 'BBBB' });
  });
});
